from __future__ import annotations

import asyncio

from replicator.copier.ledger import BlobActions, BlobLedger, BlobOutcome
from replicator.registry.blobs import MountResult

DIGEST = "sha256:" + "b" * 64


class Destination:
    """Which repositories hold the blob, and every action the ledger took."""

    def __init__(self, *holding: str, mountable: bool = True) -> None:
        self.holding = set(holding)
        self.mountable = mountable
        self.calls: list[str] = []

    def actions(self, repository: str) -> BlobActions:
        async def exists() -> bool:
            self.calls.append(f"head {repository}")
            return repository in self.holding

        async def mount_from(origin: str) -> MountResult:
            self.calls.append(f"mount {repository} from {origin}")
            if self.mountable and origin in self.holding:
                self.holding.add(repository)
                return MountResult(mounted=True)
            return MountResult(mounted=False, upload_url="http://reg/session")

        async def transfer(session_url: str | None) -> None:
            self.calls.append(f"upload {repository} via {session_url}")
            await asyncio.sleep(0.01)
            self.holding.add(repository)

        return BlobActions(exists, mount_from, transfer)


async def test_heads_before_uploading() -> None:
    destination = Destination("app")

    outcome = await BlobLedger().ensure(DIGEST, "app", destination.actions("app"))

    assert outcome is BlobOutcome.EXISTED
    assert destination.calls == ["head app"]


async def test_remembers_holdings_so_a_repeat_costs_nothing() -> None:
    destination = Destination()
    ledger = BlobLedger()
    await ledger.ensure(DIGEST, "app", destination.actions("app"))
    destination.calls.clear()

    outcome = await ledger.ensure(DIGEST, "app", destination.actions("app"))

    assert outcome is BlobOutcome.EXISTED
    assert destination.calls == []


async def test_mounts_from_a_repository_known_to_hold_the_blob() -> None:
    destination = Destination()
    ledger = BlobLedger()
    await ledger.ensure(DIGEST, "app", destination.actions("app"))
    destination.calls.clear()

    outcome = await ledger.ensure(DIGEST, "web", destination.actions("web"))

    assert outcome is BlobOutcome.MOUNTED
    assert destination.calls == ["mount web from app"]


async def test_uploads_into_the_session_a_refused_mount_opened() -> None:
    destination = Destination(mountable=False)
    ledger = BlobLedger()
    ledger.record(DIGEST, "app")

    outcome = await ledger.ensure(DIGEST, "web", destination.actions("web"))

    assert outcome is BlobOutcome.COPIED
    assert destination.calls[-1] == "upload web via http://reg/session"


async def test_concurrent_jobs_share_one_transfer() -> None:
    destination = Destination()
    ledger = BlobLedger()

    outcomes = await asyncio.gather(
        *(ledger.ensure(DIGEST, "app", destination.actions("app")) for _ in range(5))
    )

    assert sorted(outcomes) == sorted([BlobOutcome.COPIED] + [BlobOutcome.SHARED] * 4)
    assert [call for call in destination.calls if call.startswith("upload")] == [
        "upload app via None"
    ]


async def test_concurrent_jobs_in_other_repositories_mount_after_one_upload() -> None:
    destination = Destination()
    ledger = BlobLedger()

    outcomes = await asyncio.gather(
        *(ledger.ensure(DIGEST, repo, destination.actions(repo)) for repo in "abc")
    )

    assert outcomes.count(BlobOutcome.COPIED) == 1
    assert outcomes.count(BlobOutcome.MOUNTED) == 2


async def test_a_failed_transfer_lets_waiting_jobs_try_themselves() -> None:
    destination = Destination()
    ledger = BlobLedger()
    failing = destination.actions("app")

    async def broken(session_url: str | None) -> None:
        await asyncio.sleep(0.01)
        raise OSError("reset")

    first = ledger.ensure(
        DIGEST, "app", BlobActions(failing.exists, failing.mount_from, broken)
    )
    second = ledger.ensure(DIGEST, "app", destination.actions("app"))

    results = await asyncio.gather(first, second, return_exceptions=True)

    assert isinstance(results[0], OSError)
    assert results[1] is BlobOutcome.COPIED
