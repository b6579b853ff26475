"""Tests for the event parsers: distribution notifications and EventBridge messages.

The documents copy the shapes the senders really produce: distribution's
``notifications/bridge.go`` (with its request, actor and source records) and the
sample events of the Amazon ECR user guide, "Amazon ECR events and EventBridge".
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from replicator.errors import InvalidInputError
from replicator.events import (
    NO_ACKNOWLEDGEMENT,
    Action,
    EventRejected,
    ImageEvent,
    RejectReason,
    parse_eventbridge_message,
    parse_notification_envelope,
)

DELETE = object()
DIGEST = "sha256:fea8895f450959fa676bcc1df0611ea93823a735a01205fd8622846041d0c7cf"
LAYER_DIGEST = "sha256:3b3692957d439ac1928219a83fac91e7bf96c153725526874673ae1f2023f8d5"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
EVENT_ID = "320678d8-ca14-430f-8bb6-4ca139cd83f7"
# 2016-03-09T22:44:26.402973972Z
NOTIFICATION_TIME = 1457563466.402973
ECR_EVENT_ID = "13cde686-328b-6117-af20-0e5566167482"
ECR_TIME = 1573869274.0  # 2019-11-16T01:54:34Z


def changed(base: Any, change: Any) -> Any:
    """Return base with change merged in: mappings recursively, DELETE removes."""
    if not (isinstance(base, dict) and isinstance(change, dict)):
        return change
    result = copy.deepcopy(base)
    for key, value in change.items():
        if value is DELETE:
            result.pop(key, None)
        else:
            result[key] = changed(result.get(key), value)
    return result


# A manifest push by tag, as distribution 2.8 sends it.
MANIFEST_PUSH: dict[str, Any] = {
    "id": EVENT_ID,
    "timestamp": "2016-03-09T14:44:26.402973972-08:00",
    "action": "push",
    "target": {
        "mediaType": DOCKER_MANIFEST,
        "size": 708,
        "digest": DIGEST,
        "length": 708,
        "repository": "team/hello-world",
        "url": f"http://registry.local:5000/v2/team/hello-world/manifests/{DIGEST}",
        "tag": "latest",
    },
    "request": {
        "id": "6df24a34-0959-4923-81ca-14f09767db19",
        "addr": "192.168.64.11:42961",
        "host": "registry.local:5000",
        "method": "PUT",
        "useragent": "docker/24.0.7 go/go1.20.10",
    },
    "actor": {"name": "ci-bot"},
    "source": {
        "addr": "registry-0:5000",
        "instanceID": "a53db899-3b4b-4a62-a067-8dd013beaca4",
    },
}
BLOB_PUSH = changed(
    MANIFEST_PUSH,
    {
        "target": {
            "mediaType": "application/octet-stream",
            "digest": LAYER_DIGEST,
            "url": f"http://registry.local:5000/v2/team/hello-world/blobs/{LAYER_DIGEST}",
            "tag": DELETE,
        }
    },
)
# distribution 2.8's ManifestDeleted: repository and digest only.
MANIFEST_DELETE = changed(
    MANIFEST_PUSH,
    {
        "action": "delete",
        "target": {
            "mediaType": DELETE,
            "size": DELETE,
            "length": DELETE,
            "url": DELETE,
            "tag": DELETE,
        },
    },
)


def push_event(**expected: Any) -> ImageEvent:
    """Return the event MANIFEST_PUSH parses to, with fields changed."""
    fields: dict[str, Any] = {
        "action": Action.PUSH,
        "repository": "team/hello-world",
        "digest": DIGEST,
        "tag": "latest",
        "media_type": DOCKER_MANIFEST,
        "occurred_at": NOTIFICATION_TIME,
        "event_id": EVENT_ID,
        "origin": "webhook",
    }
    return ImageEvent(**{**fields, **expected})


def envelope(*events: Any) -> bytes:
    """Return a notification envelope as distribution serialises it."""
    return json.dumps({"events": list(events)}, indent=3).encode()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (MANIFEST_PUSH, push_event()),
        (
            changed(MANIFEST_PUSH, {"target": {"mediaType": OCI_INDEX}}),
            push_event(media_type=OCI_INDEX),
        ),
        (  # an index child or a referrer: pushed by digest, without a tag
            changed(
                MANIFEST_PUSH, {"target": {"tag": DELETE, "mediaType": OCI_MANIFEST}}
            ),
            push_event(tag=None, media_type=OCI_MANIFEST),
        ),
        (  # a manifest type we do not copy: the URL says it is a manifest
            changed(MANIFEST_PUSH, {"target": {"mediaType": SCHEMA1}}),
            push_event(media_type=SCHEMA1),
        ),
        (
            MANIFEST_DELETE,
            push_event(action=Action.DELETE, tag=None, media_type=None),
        ),
        (  # distribution 3.x TagDeleted: repository and tag only
            changed(MANIFEST_DELETE, {"target": {"digest": DELETE, "tag": "v1.2.3"}}),
            push_event(
                action=Action.DELETE, digest=None, tag="v1.2.3", media_type=None
            ),
        ),
        (
            changed(MANIFEST_PUSH, {"timestamp": "2024-01-18T14:37:42.19408263Z"}),
            push_event(occurred_at=1705588662.194082),
        ),
        (  # Go's omitempty aside, an empty tag means no tag
            changed(MANIFEST_PUSH, {"target": {"tag": ""}}),
            push_event(tag=None),
        ),
    ],
)
def test_parses_notification_events(entry: Any, expected: ImageEvent) -> None:
    events, rejections = parse_notification_envelope(envelope(entry))

    assert (events, rejections) == ([expected], [])


@pytest.mark.parametrize(
    ("entry", "reason", "phrase"),
    [
        (changed(MANIFEST_PUSH, {"action": "pull"}), "ignored", "pull events"),
        (
            changed(BLOB_PUSH, {"action": "mount", "target": {"fromRepository": "a"}}),
            "ignored",
            "mount events",
        ),
        (BLOB_PUSH, "ignored", "a blob push names no image"),
        (
            changed(BLOB_PUSH, {"target": {"mediaType": DELETE}}),
            "ignored",
            "a blob push",
        ),
        (
            changed(MANIFEST_DELETE, {"target": {"digest": DELETE}}),
            "ignored",
            "repository deletions",
        ),
        (changed(MANIFEST_PUSH, {"action": "tag"}), "unsupported_action", "push or"),
        (
            changed(MANIFEST_PUSH, {"target": {"repository": "Team/Hello"}}),
            "invalid_name",
            "invalid repository name",
        ),
        (  # distribution's own test digest, too short to be real
            changed(MANIFEST_PUSH, {"target": {"digest": "sha256:0123456789abcdef0"}}),
            "invalid_name",
            "invalid digest",
        ),
        (
            changed(MANIFEST_PUSH, {"target": {"tag": "-latest"}}),
            "invalid_name",
            "invalid tag",
        ),
        (
            changed(MANIFEST_PUSH, {"target": {"repository": "../../v2/x"}}),
            "invalid_name",
            "invalid repository name",
        ),
        (changed(MANIFEST_PUSH, {"id": DELETE}), "malformed", "id is missing"),
        (changed(MANIFEST_PUSH, {"id": "x" * 257}), "malformed", "longer than 256"),
        (changed(MANIFEST_PUSH, {"action": DELETE}), "malformed", "action is missing"),
        (changed(MANIFEST_PUSH, {"target": DELETE}), "malformed", "target must be"),
        (changed(MANIFEST_PUSH, {"target": "x"}), "malformed", "target must be"),
        (
            changed(MANIFEST_PUSH, {"target": {"repository": DELETE}}),
            "malformed",
            "repository is missing",
        ),
        (
            changed(MANIFEST_PUSH, {"target": {"repository": 7}}),
            "malformed",
            "repository must be a string",
        ),
        (
            changed(MANIFEST_PUSH, {"target": {"digest": DELETE}}),
            "malformed",
            "a push needs a digest",
        ),
        (
            changed(MANIFEST_PUSH, {"target": {"mediaType": "x" * 256}}),
            "malformed",
            "mediaType is too long",
        ),
        (
            changed(MANIFEST_PUSH, {"timestamp": "yesterday"}),
            "malformed",
            "not an RFC 3339 time",
        ),
        (["push"], "malformed", "event must be a JSON object"),
    ],
)
def test_rejects_notification_events_with_a_reason(
    entry: Any, reason: str, phrase: str
) -> None:
    events, rejections = parse_notification_envelope(envelope(entry))

    assert events == []
    assert [
        (rejection.reason, phrase in rejection.message) for rejection in rejections
    ] == [(reason, True)], rejections[0].message


def test_keeps_good_events_of_an_envelope_with_bad_ones() -> None:
    body = envelope(
        changed(MANIFEST_PUSH, {"action": "pull"}),
        MANIFEST_PUSH,
        BLOB_PUSH,
        changed(MANIFEST_PUSH, {"target": {"tag": "~"}}),
        MANIFEST_DELETE,
    )

    events, rejections = parse_notification_envelope(body)

    assert [event.action for event in events] == [Action.PUSH, Action.DELETE]
    assert [rejection.reason for rejection in rejections] == [
        "ignored",
        "ignored",
        "invalid_name",
    ]
    assert rejections[2].context == {
        "event_id": EVENT_ID,
        "action": "push",
        "tag": "~",
    }


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"events": [',
        b"\xff\xfe{}",
        b"[]",
        b"{}",
        b'{"events": {}}',
        b'{"Events": []}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"events": [' + b"1" * 5000 + b"]}",
    ],
)
def test_refuses_a_body_that_is_not_an_envelope(body: bytes) -> None:
    with pytest.raises(EventRejected) as caught:
        parse_notification_envelope(body)

    assert caught.value.reason == "malformed"


def test_accepts_an_empty_envelope() -> None:
    assert parse_notification_envelope(b'{"events": []}') == ([], [])


# The push sample of the ECR user guide, with a full-length digest.
ECR_PUSH: dict[str, Any] = {
    "version": "0",
    "id": ECR_EVENT_ID,
    "detail-type": "ECR Image Action",
    "source": "aws.ecr",
    "account": "123456789012",
    "time": "2019-11-16T01:54:34Z",
    "region": "us-west-2",
    "resources": [],
    "detail": {
        "result": "SUCCESS",
        "repository-name": "my-repository-name",
        "image-digest": DIGEST,
        "action-type": "PUSH",
        "image-tag": "latest",
    },
}
ECR_DELETE = changed(ECR_PUSH, {"detail": {"action-type": "DELETE"}})
ECR_SCAN = changed(
    ECR_PUSH,
    {
        "detail-type": "ECR Image Scan",
        "detail": {
            "scan-status": "COMPLETE",
            "finding-severity-counts": {"CRITICAL": 1},
            "image-tags": ["latest"],
            "result": DELETE,
            "action-type": DELETE,
        },
    },
)


def ecr_event(**expected: Any) -> ImageEvent:
    """Return the event ECR_PUSH parses to, with fields changed."""
    fields: dict[str, Any] = {
        "action": Action.PUSH,
        "repository": "my-repository-name",
        "digest": DIGEST,
        "tag": "latest",
        "media_type": None,
        "occurred_at": ECR_TIME,
        "event_id": ECR_EVENT_ID,
        "origin": "sqs",
    }
    return ImageEvent(**{**fields, **expected})


def sns_wrapped(event: Any) -> dict[str, Any]:
    """Return an event as SNS delivers it to SQS without raw message delivery."""
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:ecr-events",
        "Message": json.dumps(event),
        "Timestamp": "2019-11-16T01:54:35.001Z",
        "SignatureVersion": "1",
    }


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (ECR_PUSH, ecr_event()),
        (
            changed(
                ECR_PUSH,
                {
                    "detail": {
                        "image-tag": DELETE,
                        "manifest-media-type": OCI_INDEX,
                        "artifact-media-type": OCI_CONFIG,
                    }
                },
            ),
            ecr_event(tag=None, media_type=OCI_INDEX),
        ),
        (ECR_DELETE, ecr_event(action=Action.DELETE)),
        (
            changed(ECR_DELETE, {"detail": {"image-digest": DELETE}}),
            ecr_event(action=Action.DELETE, digest=None),
        ),
        (sns_wrapped(ECR_PUSH), ecr_event()),
        (
            changed(ECR_PUSH, {"time": "2019-11-16T01:54:34.250Z"}),
            ecr_event(occurred_at=ECR_TIME + 0.25),
        ),
    ],
)
def test_parses_ecr_image_actions(message: Any, expected: ImageEvent) -> None:
    assert parse_eventbridge_message(json.dumps(message)) == expected


@pytest.mark.parametrize(
    ("body", "reason", "phrase"),
    [
        (
            changed(ECR_PUSH, {"detail": {"result": "FAILURE"}}),
            "failed_result",
            "the action failed",
        ),
        (
            changed(ECR_PUSH, {"detail": {"action-type": "REPLICATE"}}),
            "unsupported_action",
            "PUSH or DELETE",
        ),
        (ECR_SCAN, "ignored", "not an ECR Image Action"),
        (
            changed(ECR_PUSH, {"detail-type": "ECR Pull Through Cache Action"}),
            "ignored",
            "not an ECR Image Action",
        ),
        (
            changed(ECR_PUSH, {"source": "custom.app"}),
            "ignored",
            "not an ECR Image Action",
        ),
        (
            changed(ECR_PUSH, {"detail": {"repository-name": "My_Repo"}}),
            "invalid_name",
            "invalid repository name",
        ),
        (
            changed(ECR_PUSH, {"detail": {"image-digest": "sha256:7f5b2640fe6fb4f4"}}),
            "invalid_name",
            "invalid digest",
        ),
        (
            changed(ECR_PUSH, {"detail": {"image-digest": DELETE}}),
            "malformed",
            "a push needs a digest",
        ),
        (
            changed(
                ECR_DELETE, {"detail": {"image-digest": DELETE, "image-tag": DELETE}}
            ),
            "malformed",
            "a delete a digest or a tag",
        ),
        (changed(ECR_PUSH, {"detail": DELETE}), "malformed", "detail must be"),
        (changed(ECR_PUSH, {"detail": ["x"]}), "malformed", "detail must be"),
        (changed(ECR_PUSH, {"id": DELETE}), "malformed", "id is missing"),
        (changed(ECR_PUSH, {"time": DELETE}), "malformed", "time is missing"),
        (changed(ECR_PUSH, {"detail-type": DELETE}), "malformed", "detail-type is"),
        (
            changed(ECR_PUSH, {"detail": {"result": DELETE}}),
            "malformed",
            "result is missing",
        ),
        (
            changed(ECR_PUSH, {"detail": {"image-tag": ["latest"]}}),
            "malformed",
            "image-tag must be a string",
        ),
        (
            changed(sns_wrapped(ECR_PUSH), {"Message": "{"}),
            "malformed",
            "not valid JSON",
        ),
        (changed(sns_wrapped(ECR_PUSH), {"Message": {}}), "malformed", "must be a"),
        ("not json", "malformed", "not valid JSON"),
        ([ECR_PUSH], "malformed", "message must be a JSON object"),
    ],
)
def test_rejects_eventbridge_messages_with_a_reason(
    body: Any, reason: str, phrase: str
) -> None:
    text = body if isinstance(body, str) else json.dumps(body)

    with pytest.raises(EventRejected) as caught:
        parse_eventbridge_message(text)

    assert (caught.value.reason, phrase in caught.value.message) == (reason, True), (
        caught.value.message
    )


def test_failed_result_names_the_event() -> None:
    body = json.dumps(changed(ECR_PUSH, {"detail": {"result": "FAILURE"}}))

    with pytest.raises(EventRejected) as caught:
        parse_eventbridge_message(body)

    assert caught.value.context == {
        "event_id": ECR_EVENT_ID,
        "action": "push",
        "repository": "my-repository-name",
        "result": "FAILURE",
    }


@pytest.mark.parametrize(
    ("fields", "phrase"),
    [
        ({"repository": "UPPER"}, "invalid repository name"),
        ({"digest": "md5:abc"}, "invalid digest"),
        ({"tag": "a" * 129}, "invalid tag"),
        ({"digest": None}, "needs a digest"),
        ({"digest": None, "tag": None, "action": Action.DELETE}, "needs a digest"),
    ],
)
def test_image_event_validates_itself(fields: dict[str, Any], phrase: str) -> None:
    with pytest.raises(InvalidInputError, match=phrase):
        push_event(**fields)


def test_reject_reasons_are_the_metric_vocabulary() -> None:
    assert sorted(RejectReason) == [
        "duplicate",
        "failed_result",
        "ignored",
        "invalid_name",
        "malformed",
        "unauthorized",
        "unsupported_action",
    ]


async def test_no_acknowledgement_does_nothing() -> None:
    await NO_ACKNOWLEDGEMENT.done()
    await NO_ACKNOWLEDGEMENT.retry_later()
