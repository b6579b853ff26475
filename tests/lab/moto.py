"""Amazon services for tests: moto in server mode, a real HTTP server on loopback.

One ``moto_server`` process serves the test session (it takes about a second to
start); the ``moto`` fixture resets its state for each test and points the AWS
environment of that test at it with dummy credentials, so nothing can reach AWS
or read the developer's own profile.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from aiobotocore.session import get_session

from tests.lab.registry import find_free_port, probe_status

MOTO_BINARY = Path(sys.executable).parent / "moto_server"
# moto's default account: queue URLs and ARNs name it.
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DUMMY_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    # Neither the instance metadata service nor the developer's files answer.
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
_UNSET_ENVIRONMENT = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")
_READY_TIMEOUT_S = 20.0
_POLL_INTERVAL_S = 0.05
_STOP_TIMEOUT_S = 5.0


class MotoStartError(RuntimeError):
    """moto_server exited or never answered."""


class MotoServer:
    """A ``moto_server`` child process on a loopback host and a free port."""

    def __init__(self, workdir: Path, *, host: str = "127.0.0.1") -> None:
        self.workdir = workdir
        self.host = host
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Return the endpoint URL, such as ``http://127.0.0.1:5000``."""
        if not self.port:
            raise RuntimeError("moto_server has not been started")
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        """Return the path of the server's log file."""
        return self.workdir / "moto.log"

    @property
    def running(self) -> bool:
        """Tell whether the child process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self) -> MotoServer:
        """Start the server and wait until it answers."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = find_free_port(self.host)
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [str(MOTO_BINARY), "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_until_ready()

        return self

    def stop(self) -> None:
        """Stop the server (TERM, then KILL); stopping twice is harmless."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=_STOP_TIMEOUT_S)

    def reset(self) -> None:
        """Forget every queue, message and resource (moto's reset API)."""
        request = urllib.request.Request(
            f"{self.url}/moto-api/reset", data=b"", method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def queue_url(self, name: str) -> str:
        """Return the URL moto gives a queue of this name."""
        return f"{self.url}/{ACCOUNT_ID}/{name}"

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of the server log, for failure messages."""
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.running:
                raise MotoStartError(f"moto_server exited:\n{self.log_tail()}")
            if probe_status(f"{self.url}/moto-api/") == 200:
                return
            time.sleep(_POLL_INTERVAL_S)
        self.stop()
        raise MotoStartError(f"moto_server not ready:\n{self.log_tail()}")


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """Start one moto_server for the session; prefer ``moto`` in tests."""
    with MotoServer(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def moto(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Give the test a freshly reset moto and a dummy AWS environment."""
    for name in _UNSET_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    for name, value in DUMMY_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    moto_server.reset()

    return moto_server


# A digest for events about images that need not exist.
DIGEST = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678"
# Receives before the redrive policy moves a message to the dead-letter queue.
MAX_RECEIVE_COUNT = 2


@dataclass(frozen=True, slots=True)
class Queues:
    """A work queue, its dead-letter queue, and a client to inspect them."""

    url: str
    dead_letter_url: str
    client: Any

    async def send(self, body: str) -> None:
        """Send one message to the work queue."""
        await self.client.send_message(QueueUrl=self.url, MessageBody=body)

    async def counts(self, url: str | None = None) -> tuple[int, int]:
        """Return (visible, in flight) message counts of a queue."""
        response = await self.client.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )
        attributes = response["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )

    async def receive_dead_letters(self, timeout_s: float = 15.0) -> list[str]:
        """Wait for the dead-letter queue to hold a message; return the bodies."""
        async with asyncio.timeout(timeout_s):
            while True:
                response = await self.client.receive_message(
                    QueueUrl=self.dead_letter_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                )
                if response.get("Messages"):
                    return [message["Body"] for message in response["Messages"]]


@pytest.fixture
async def queues(moto: MotoServer) -> AsyncIterator[Queues]:
    """Create a queue whose redrive policy sends messages to a DLQ after 2 receives."""
    session = get_session()
    async with session.create_client(
        "sqs", region_name=REGION, endpoint_url=moto.url
    ) as client:
        dead_letter = await client.create_queue(QueueName="events-dlq")
        attributes = await client.get_queue_attributes(
            QueueUrl=dead_letter["QueueUrl"], AttributeNames=["QueueArn"]
        )
        redrive = {
            "deadLetterTargetArn": attributes["Attributes"]["QueueArn"],
            "maxReceiveCount": str(MAX_RECEIVE_COUNT),
        }
        queue = await client.create_queue(
            QueueName="events",
            Attributes={"RedrivePolicy": json.dumps(redrive)},
        )
        yield Queues(queue["QueueUrl"], dead_letter["QueueUrl"], client)


def ecr_event(
    tag: str | None = "latest",
    *,
    repository: str = "team/app",
    digest: str = DIGEST,
    action: str = "PUSH",
    result: str = "SUCCESS",
    detail_type: str = "ECR Image Action",
    event_id: str | None = None,
) -> str:
    """Return an EventBridge ECR event as it arrives in an SQS message body."""
    detail: dict[str, Any] = {
        "result": result,
        "repository-name": repository,
        "image-digest": digest,
        "action-type": action,
        "manifest-media-type": "application/vnd.oci.image.manifest.v1+json",
    }
    if tag is not None:
        detail["image-tag"] = tag
    return json.dumps(
        {
            "version": "0",
            "id": event_id or str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": "aws.ecr",
            "account": "123456789012",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": REGION,
            "resources": [],
            "detail": detail,
        }
    )
