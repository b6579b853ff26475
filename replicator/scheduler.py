"""Turn events into copy jobs: coalesce, serialise per tag, bound, acknowledge.

Each job has a *lane*: one destination repository and one tag (or digest). A lane
runs one copy at a time. Events that arrive for a lane while it runs are coalesced
into one more run, which resolves the source tag again, so after a burst of pushes
every destination ends on the newest digest (DESIGN.md, guarantee 8) and an older
copy can never finish after a newer one.

An event is acknowledged only when every job it caused has succeeded in a run that
started after the event arrived (guarantee 7); a failure leaves it for redelivery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

from replicator import metrics
from replicator.copier.copier import Copier
from replicator.copier.results import CopyJob
from replicator.errors import InvalidInputError, ReplicatorError, error_fields
from replicator.events import Action, Delivery, ImageEvent
from replicator.registry import manifests
from replicator.registry.client import RegistryClient
from replicator.rules import RuleSet, Target

log = structlog.get_logger("replicator.scheduler")

LaneKey = tuple[str, str, str]
# A failed job is run again after these pauses before its events are given back to
# their source; webhook events cannot be redelivered, so this is their only retry.
LANE_RETRY_DELAYS_S = (5.0, 30.0)


@dataclass(slots=True)
class Tracker:
    """One delivered event and the jobs it still waits for."""

    delivery: Delivery
    waiting: int
    received_at: float = field(default_factory=time.monotonic)
    failed: bool = False


@dataclass(slots=True)
class Lane:
    """The copies of one tag (or digest) to one destination repository."""

    job: CopyJob
    action: Action
    trackers: list[Tracker] = field(default_factory=list)
    failures: int = 0


@dataclass(slots=True)
class Scheduler:
    """Runs jobs for delivered events with bounded concurrency."""

    copier: Copier
    rules: RuleSet
    source: RegistryClient
    destinations: Mapping[str, RegistryClient]
    workers: int = 4
    max_pending_events: int = 1000
    retry_delays_s: tuple[float, ...] = LANE_RETRY_DELAYS_S
    _lanes: dict[LaneKey, Lane] = field(default_factory=dict)
    _ready_lanes: asyncio.Queue[LaneKey] = field(default_factory=asyncio.Queue)
    _oldest: dict[int, float] = field(default_factory=dict)
    _capacity: asyncio.Semaphore = field(init=False)
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._capacity = asyncio.Semaphore(self.max_pending_events)
        self._idle.set()
        metrics.OLDEST_EVENT_AGE.set_function(self.oldest_event_age_s)
        metrics.QUEUE_DEPTH.set_function(lambda: float(len(self._oldest)))

    async def submit(self, delivery: Delivery) -> None:
        """Accept an event; wait while too many events are unacknowledged."""
        event = delivery.event
        try:
            targets = self._targets(event)
        except InvalidInputError as error:
            _reject(event, "invalid_name", error)
            await delivery.ack.done()
            return
        if not targets:
            metrics.EVENTS_REJECTED.labels(
                source=event.origin, reason="not_selected"
            ).inc()
            log.info("event_not_selected", **_event_fields(event))
            await delivery.ack.done()
            return

        await self._capacity.acquire()
        tracker = Tracker(delivery, waiting=len(targets))
        self._track(tracker)
        for target in targets:
            self._enqueue(self._job(event, target), event.action, tracker)

    async def run(self) -> None:
        """Run the workers until cancelled."""
        async with asyncio.TaskGroup() as group:
            for _ in range(self.workers):
                group.create_task(self._work())

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no lane has work, up to ``timeout_s``; say whether it did."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    def oldest_event_age_s(self) -> float:
        """Return the age of the oldest unacknowledged event (0 when none)."""
        if not self._oldest:
            return 0.0
        return time.monotonic() - min(self._oldest.values())

    @property
    def unacknowledged(self) -> int:
        """Return how many events are accepted and not yet acknowledged."""
        return len(self._oldest)

    def _targets(self, event: ImageEvent) -> tuple[Target, ...]:
        for_delete = event.action is Action.DELETE
        return self.rules.targets(event.repository, event.tag, for_delete=for_delete)

    def _job(self, event: ImageEvent, target: Target) -> CopyJob:
        reference = event.tag or event.digest
        assert reference is not None
        return CopyJob(
            source=self.source,
            source_repository=event.repository,
            reference=reference,
            destination=self.destinations[target.registry],
            destination_repository=target.repository,
            rule=target.rule_name,
            announced_digest=event.digest if event.tag else None,
        )

    def _track(self, tracker: Tracker) -> None:
        self._oldest[id(tracker)] = tracker.received_at
        self._idle.clear()

    def _enqueue(self, job: CopyJob, action: Action, tracker: Tracker) -> None:
        key = (job.destination.name, job.destination_repository, job.reference)
        lane = self._lanes.get(key)
        if lane is None:
            lane = Lane(job, action)
            self._lanes[key] = lane
            self._ready_lanes.put_nowait(key)
        # The newest event decides what the lane does next (a push after a delete
        # copies again; a delete after a push deletes) and which digest it announced.
        lane.action = action
        lane.job = job
        lane.trackers.append(tracker)

    async def _work(self) -> None:
        while True:
            key = await self._ready_lanes.get()
            lane = self._lanes[key]
            destination = lane.job.destination.name
            metrics.IN_FLIGHT.labels(destination=destination).inc()
            try:
                retry_in_s = await self._run_lane(lane)
            finally:
                metrics.IN_FLIGHT.labels(destination=destination).dec()
            if retry_in_s is not None:
                asyncio.get_running_loop().call_later(
                    retry_in_s, self._ready_lanes.put_nowait, key
                )
                continue
            del self._lanes[key]
            if not self._lanes:
                self._idle.set()

    async def _run_lane(self, lane: Lane) -> float | None:
        """Run until no event waits; return a pause if the lane must run again."""
        # Trackers that arrive during a run are served by the next run, which
        # starts after them and so sees at least the state they announced.
        while lane.trackers:
            trackers, lane.trackers = lane.trackers, []
            succeeded = await self._run_once(lane)
            if not succeeded and lane.failures < len(self.retry_delays_s):
                lane.trackers = trackers + lane.trackers
                lane.failures += 1
                return self.retry_delays_s[lane.failures - 1]
            lane.failures = 0
            for tracker in trackers:
                await self._settle(tracker, lane.job, succeeded)
        return None

    async def _run_once(self, lane: Lane) -> bool:
        try:
            if lane.action is Action.DELETE:
                return await self._delete(lane.job)
            result = await self.copier.copy(lane.job)
            return result.outcome.succeeded
        except Exception:
            # A bug must not stop the worker; the event is left for redelivery.
            log.exception("lane_crashed", **lane.job.describe())
            return False

    async def _delete(self, job: CopyJob) -> bool:
        try:
            outcome = await _replicate_delete(job)
        except ReplicatorError as error:
            log.warning("image_delete_failed", **job.describe(), **error_fields(error))
            outcome = "failed"
        metrics.IMAGES.labels(
            destination=job.destination.name, rule=job.rule, result=outcome
        ).inc()
        return outcome != "failed"

    async def _settle(self, tracker: Tracker, job: CopyJob, succeeded: bool) -> None:
        tracker.waiting -= 1
        tracker.failed = tracker.failed or not succeeded
        if succeeded and tracker.delivery.event.action is Action.PUSH:
            lag_s = max(0.0, time.time() - tracker.delivery.event.occurred_at)
            metrics.REPLICATION_LAG.labels(destination=job.destination.name).observe(
                lag_s
            )
        if tracker.waiting > 0:
            return
        await self._acknowledge(tracker)

    async def _acknowledge(self, tracker: Tracker) -> None:
        del self._oldest[id(tracker)]
        self._capacity.release()
        event = tracker.delivery.event
        try:
            if tracker.failed:
                await tracker.delivery.ack.retry_later()
            else:
                await tracker.delivery.ack.done()
        except Exception as error:
            # The event stays unacknowledged at its source and comes back.
            log.warning(
                "event_ack_failed", **_event_fields(event), **error_fields(error)
            )
            return
        log.debug("event_settled", **_event_fields(event), failed=tracker.failed)


async def _replicate_delete(job: CopyJob) -> str:
    """Delete at the destination what the source no longer holds.

    The distribution API deletes manifests, not tags, and deleting a manifest drops
    every tag naming it; so a destination manifest is deleted only once its content
    is gone from the source too. A tag removed from content that lives on at the
    source is left in place, and said so in the log.
    """
    target = await manifests.head(
        job.destination, job.destination_repository, job.reference
    )
    if target is None:
        log.info("image_deleted", **job.describe(), existed=False)
        return "deleted"
    if await manifests.head(job.source, job.source_repository, target.digest):
        log.info("image_delete_kept", **job.describe(), digest=target.digest)
        return "skipped"
    await manifests.delete(job.destination, job.destination_repository, target.digest)
    log.info("image_deleted", **job.describe(), digest=target.digest, existed=True)
    return "deleted"


def _reject(event: ImageEvent, reason: str, error: Exception) -> None:
    metrics.EVENTS_REJECTED.labels(source=event.origin, reason=reason).inc()
    log.warning(
        "event_rejected", reason=reason, **_event_fields(event), **error_fields(error)
    )


def _event_fields(event: ImageEvent) -> dict[str, object]:
    return {
        "event_id": event.event_id,
        "origin": event.origin,
        "action": event.action.value,
        "repository": event.repository,
        "tag": event.tag,
        "digest": event.digest,
    }
