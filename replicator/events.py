"""Image events: the one normalised shape every event source produces, and parsers.

Pure: the parsers turn untrusted bytes from a registry's notification envelope or an
EventBridge message into validated ``ImageEvent`` values, or into ``EventRejected``
errors whose ``reason`` is the ``reason`` label of ``replicator_events_rejected_total``.
The sources in ``replicator.sources`` do the I/O and the acknowledgements.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from replicator.errors import InvalidInputError
from replicator.mediatypes import is_manifest_type
from replicator.reference import validate_digest, validate_repository, validate_tag

# Bounds on free-text fields, so a hostile sender cannot blow up logs or labels.
MAX_EVENT_ID_LENGTH = 256
MAX_MEDIA_TYPE_LENGTH = 255
ECR_IMAGE_ACTION = "ECR Image Action"


class Action(enum.StrEnum):
    """What happened to the image at the source."""

    PUSH = "push"
    DELETE = "delete"


class RejectReason(enum.StrEnum):
    """Why an event was not queued: the ``reason`` metric label vocabulary.

    The parsers produce the first five; the sources add ``unauthorized`` (webhook
    requests without the token) and ``duplicate`` (an event id seen recently).
    """

    MALFORMED = "malformed"
    UNSUPPORTED_ACTION = "unsupported_action"
    INVALID_NAME = "invalid_name"
    FAILED_RESULT = "failed_result"
    IGNORED = "ignored"
    UNAUTHORIZED = "unauthorized"
    DUPLICATE = "duplicate"


class EventRejected(InvalidInputError):
    """An event that will not be replicated, with the reason from a fixed vocabulary.

    Context keys: ``event_id``, ``action`` and ``repository`` when they were read.
    """

    def __init__(self, message: str, *, reason: RejectReason, **context: Any) -> None:
        super().__init__(message, **context)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ImageEvent:
    """One push or delete of an image at the source registry."""

    action: Action
    repository: str
    digest: str | None
    tag: str | None
    media_type: str | None
    occurred_at: float
    event_id: str
    origin: str

    def __post_init__(self) -> None:
        """Refuse names that are not valid, and a push without a digest."""
        validate_repository(self.repository)
        if self.digest is not None:
            validate_digest(self.digest)
        if self.tag is not None:
            validate_tag(self.tag)
        if self.digest is None and (self.action is Action.PUSH or self.tag is None):
            raise InvalidInputError(
                "an event needs a digest, or a tag for a delete by tag",
                repository=self.repository,
            )


class Acknowledgement(Protocol):
    """How a source learns the outcome of an event it delivered.

    Call exactly one of the two, once; later calls do nothing. Neither raises for a
    failure to reach the source: the event is then delivered again later.
    """

    async def done(self) -> None:
        """Every destination succeeded: forget the event (e.g. delete the message)."""

    async def retry_later(self) -> None:
        """Something failed: leave the event to be delivered again."""


class NoAcknowledgement:
    """The acknowledgement of sources that acknowledge on handover (the webhook).

    The registry's HTTP request is answered once the event is queued; nothing is
    left to tell it afterwards.
    """

    __slots__ = ()

    async def done(self) -> None:
        """Do nothing: the HTTP answer was the acknowledgement."""

    async def retry_later(self) -> None:
        """Do nothing: the registry will not send the event again."""


NO_ACKNOWLEDGEMENT = NoAcknowledgement()


@dataclass(frozen=True, slots=True)
class Delivery:
    """An event with the handle that acknowledges it."""

    event: ImageEvent
    ack: Acknowledgement


# Awaits while the daemon's queue is full: that wait is the sources' backpressure.
EventSink = Callable[[Delivery], Awaitable[None]]


def parse_notification_envelope(
    body: bytes,
) -> tuple[list[ImageEvent], list[EventRejected]]:
    """Parse a distribution registry notification envelope (``{"events": [...]}``).

    Return the accepted events and the rejected ones, in order; raise
    ``EventRejected`` (malformed) when the body is not an envelope at all.
    """
    document = _load_json(body)
    entries = document.get("events") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise EventRejected(
            'not a notification envelope: expected {"events": [...]}',
            reason=RejectReason.MALFORMED,
        )
    events: list[ImageEvent] = []
    rejections: list[EventRejected] = []
    for entry in entries:
        try:
            events.append(parse_notification_event(entry))
        except EventRejected as rejection:
            rejections.append(rejection)

    return events, rejections


def parse_notification_event(entry: object) -> ImageEvent:
    """Parse one event of a notification envelope, or raise EventRejected.

    distribution sends a push for every manifest put (with ``target.tag`` only
    when put by tag: index children come by digest alone) and, in 2.x, for every
    blob upload; blob events carry no image and are ignored, as are pulls and
    mounts. A delete names a digest (manifest or blob, indistinguishable), a tag
    (each tag a manifest deletion removed, or a 3.x tag deletion) or neither
    (3.x repository deletion, ignored).
    """
    fields = _require_mapping(entry, "event")
    event_id = _event_id(fields)
    action = _required_string(fields, "action", event_id=event_id)
    target = _require_mapping(fields.get("target"), "target", event_id=event_id)
    _check_notification_action(action, event_id)
    repository = _required_string(target, "repository", event_id=event_id)
    digest = _optional_string(target, "digest", event_id=event_id)
    tag = _optional_string(target, "tag", event_id=event_id)
    media_type = _media_type(target, "mediaType", event_id)
    if action == Action.PUSH and not _is_manifest_target(media_type, target):
        raise _ignored("a blob push names no image", event_id, action, repository)
    if action == Action.DELETE and digest is None and tag is None:
        raise _ignored("repository deletions are not replicated", event_id, action)

    return _build_event(
        action=Action(action),
        repository=repository,
        digest=digest,
        tag=tag,
        media_type=media_type,
        occurred_at=_timestamp(fields, "timestamp", event_id),
        event_id=event_id,
        origin="webhook",
    )


def _check_notification_action(action: str, event_id: str) -> None:
    """Ignore pulls and mounts; refuse actions this code does not know."""
    if action in ("pull", "mount"):
        raise _ignored(f"{action} events change nothing", event_id, action)
    if action not in (Action.PUSH, Action.DELETE):
        raise EventRejected(
            "unsupported action; expected push or delete",
            reason=RejectReason.UNSUPPORTED_ACTION,
            event_id=event_id,
            action=action[:40],
        )


def _is_manifest_target(media_type: str | None, target: Mapping[str, Any]) -> bool:
    """Say whether a push event names a manifest rather than a blob.

    The media type says it for the manifest types we copy; for others (schema 1,
    future types) the URL distribution builds (``/v2/<name>/manifests/<digest>``
    rather than ``/blobs/``) does, so the copier can report what it cannot copy.
    """
    if media_type is not None and is_manifest_type(media_type):
        return True
    url = target.get("url")
    if not isinstance(url, str):
        return False

    return "/manifests/" in urlsplit(url).path


def parse_eventbridge_message(body: str) -> ImageEvent:
    """Parse an SQS message body holding an EventBridge ``ECR Image Action`` event.

    The event may come as EventBridge delivers it to SQS, or wrapped in an SNS
    notification (EventBridge -> SNS -> SQS without raw message delivery). Raise
    ``EventRejected`` for anything else.
    """
    fields = _unwrap_sns(_require_mapping(_load_json(body), "message"))
    event_id = _event_id(fields)
    detail_type = _required_string(fields, "detail-type", event_id=event_id)
    if detail_type != ECR_IMAGE_ACTION or fields.get("source") != "aws.ecr":
        raise _ignored("not an ECR Image Action event", event_id)
    detail = _require_mapping(fields.get("detail"), "detail", event_id=event_id)
    action = _ecr_action(detail, event_id)
    repository = _required_string(detail, "repository-name", event_id=event_id)
    _check_ecr_result(detail, event_id, action, repository)

    return _build_event(
        action=action,
        repository=repository,
        digest=_optional_string(detail, "image-digest", event_id=event_id),
        tag=_optional_string(detail, "image-tag", event_id=event_id),
        media_type=_media_type(detail, "manifest-media-type", event_id),
        occurred_at=_timestamp(fields, "time", event_id),
        event_id=event_id,
        origin="sqs",
    )


def _unwrap_sns(fields: Mapping[str, Any]) -> Mapping[str, Any]:
    """Return the event inside an SNS notification, or the fields unchanged."""
    if fields.get("Type") != "Notification" or "Message" not in fields:
        return fields
    message = fields["Message"]
    if not isinstance(message, str):
        raise _malformed("SNS Message must be a string")

    return _require_mapping(_load_json(message), "SNS Message")


def _ecr_action(detail: Mapping[str, Any], event_id: str) -> Action:
    """Return the event's action: ECR's ``action-type`` PUSH or DELETE."""
    action_type = _required_string(detail, "action-type", event_id=event_id)
    if action_type not in ("PUSH", "DELETE"):
        raise EventRejected(
            "unsupported action-type; expected PUSH or DELETE",
            reason=RejectReason.UNSUPPORTED_ACTION,
            event_id=event_id,
            action=action_type[:40],
        )
    return Action(action_type.lower())


def _check_ecr_result(
    detail: Mapping[str, Any], event_id: str, action: Action, repository: str
) -> None:
    """Refuse events of failed pushes and deletes."""
    result = _required_string(detail, "result", event_id=event_id)
    if result != "SUCCESS":
        raise EventRejected(
            "the registry reports the action failed",
            reason=RejectReason.FAILED_RESULT,
            event_id=event_id,
            action=action,
            repository=repository[:300],
            result=result[:40],
        )


def _build_event(
    *,
    action: Action,
    repository: str,
    digest: str | None,
    tag: str | None,
    media_type: str | None,
    occurred_at: float,
    event_id: str,
    origin: str,
) -> ImageEvent:
    """Make the event, translating invalid names into a rejection."""
    if digest is None and (action is Action.PUSH or tag is None):
        raise _malformed(
            "a push needs a digest; a delete a digest or a tag",
            event_id=event_id,
            action=action,
            repository=repository[:300],
        )
    try:
        return ImageEvent(
            action=action,
            repository=repository,
            digest=digest,
            tag=tag,
            media_type=media_type,
            occurred_at=occurred_at,
            event_id=event_id,
            origin=origin,
        )
    except InvalidInputError as error:
        raise EventRejected(
            error.message,
            reason=RejectReason.INVALID_NAME,
            event_id=event_id,
            action=action,
            **error.context,
        ) from None


def _load_json(body: bytes | str) -> object:
    """Decode JSON from an untrusted body, or raise EventRejected (malformed)."""
    try:
        return json.loads(body)
    # ValueError covers bad JSON, bad UTF-8 and over-long integers; RecursionError
    # deeply nested arrays.
    except (ValueError, RecursionError):
        raise _malformed("body is not valid JSON") from None


def _require_mapping(value: object, what: str, **context: Any) -> Mapping[str, Any]:
    """Return value if it is a JSON object, else raise EventRejected (malformed)."""
    if not isinstance(value, dict):
        raise _malformed(f"{what} must be a JSON object", **context)
    return value


def _event_id(fields: Mapping[str, Any]) -> str:
    """Return the event's ``id``, bounded in length."""
    event_id = _required_string(fields, "id")
    if len(event_id) > MAX_EVENT_ID_LENGTH:
        raise _malformed(f"id is longer than {MAX_EVENT_ID_LENGTH} characters")
    return event_id


def _required_string(fields: Mapping[str, Any], key: str, **context: Any) -> str:
    """Return a non-empty string field, or raise EventRejected (malformed)."""
    value = _optional_string(fields, key, **context)
    if value is None:
        raise _malformed(f"{key} is missing", **context)
    return value


def _optional_string(fields: Mapping[str, Any], key: str, **context: Any) -> str | None:
    """Return a string field, None when absent or empty (Go's ``omitempty``)."""
    value = fields.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _malformed(f"{key} must be a string", **context)
    return value


def _media_type(fields: Mapping[str, Any], key: str, event_id: str) -> str | None:
    """Return an optional media type, bounded in length."""
    media_type = _optional_string(fields, key, event_id=event_id)
    if media_type is not None and len(media_type) > MAX_MEDIA_TYPE_LENGTH:
        raise _malformed(f"{key} is too long", event_id=event_id)
    return media_type


def _timestamp(fields: Mapping[str, Any], key: str, event_id: str) -> float:
    """Return an RFC 3339 time field as Unix seconds (naive times are UTC)."""
    text = _required_string(fields, key, event_id=event_id)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _malformed(f"{key} is not an RFC 3339 time", event_id=event_id) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)

    return moment.timestamp()


def _malformed(message: str, **context: Any) -> EventRejected:
    return EventRejected(message, reason=RejectReason.MALFORMED, **context)


def _ignored(
    message: str,
    event_id: str,
    action: str | None = None,
    repository: str | None = None,
) -> EventRejected:
    return EventRejected(
        message,
        reason=RejectReason.IGNORED,
        event_id=event_id,
        action=action,
        repository=None if repository is None else repository[:300],
    )
