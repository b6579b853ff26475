"""A small synchronous registry client to seed and inspect lab registries.

It shares no code with the replicator package on purpose: a test must not set up or
check its subject with the subject's own client. It speaks Basic auth and the bearer
token flow, and follows blob redirects without sending credentials to the new host.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tests.lab.images import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Blob,
    CorpusEntry,
    Image,
    Index,
    serialize,
    sha256_digest,
)

MANIFEST_ACCEPT = ", ".join(
    (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
)
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True, slots=True)
class Credentials:
    """A user name and password for Basic auth or the token service."""

    username: str
    password: str

    def basic_header(self) -> str:
        """Return the value of a Basic ``Authorization`` header."""
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


@dataclass(frozen=True, slots=True)
class HttpResult:
    """A response read whole: status, lower-cased headers and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """Return a header value by case-insensitive name."""
        return self.headers.get(name.lower())


class LabRegistryError(RuntimeError):
    """A lab registry answered with a status the caller did not expect."""

    def __init__(self, method: str, url: str, result: HttpResult) -> None:
        body = result.body[:500].decode(errors="replace")
        super().__init__(f"{method} {url} -> {result.status}: {body}")
        self.method = method
        self.url = url
        self.status = result.status
        self.result = result


class LabClient:
    """Talk to one registry, caching the last ``Authorization`` that worked."""

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout_s = timeout_s
        self._authorization: str | None = None

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResult:
        """Send a request to the registry, answering one auth challenge."""
        url = urllib.parse.urljoin(self.base_url + "/", url)
        sent_headers = dict(headers or {})
        if self._authorization is not None:
            sent_headers["Authorization"] = self._authorization
        result = self._send(method, url, body, sent_headers)
        if result.status != 401:
            return result
        self._authorization = self._answer_challenge(result)
        if self._authorization is None:
            return result
        sent_headers["Authorization"] = self._authorization

        return self._send(method, url, body, sent_headers)

    def blob_exists(self, repository: str, digest: str) -> bool:
        """Tell whether the repository holds the blob."""
        result = self.request("HEAD", f"/v2/{repository}/blobs/{digest}")
        return _expect(result, "HEAD", repository, (200, 404)).status == 200

    def push_blob(self, repository: str, blob: Blob) -> None:
        """Upload a blob in one PUT unless the registry already has it."""
        if self.blob_exists(repository, blob.digest):
            return
        started = self.request("POST", f"/v2/{repository}/blobs/uploads/")
        _expect(started, "POST", repository, (202,))
        location = self._upload_location(repository, started)
        separator = "&" if "?" in location else "?"
        query = urllib.parse.urlencode({"digest": blob.digest})
        # Without an explicit type, some clients send a form type, and
        # distribution then parses the body as a form and reports DIGEST_INVALID.
        headers = {"Content-Type": "application/octet-stream"}
        finished = self.request(
            "PUT", f"{location}{separator}{query}", body=blob.data, headers=headers
        )
        _expect(finished, "PUT", repository, (201,))

    def push_manifest(
        self, repository: str, reference: str, manifest: bytes, media_type: str
    ) -> str:
        """Put a manifest under a tag or digest and return its digest."""
        headers = {"Content-Type": media_type}
        path = f"/v2/{repository}/manifests/{reference}"
        result = self.request("PUT", path, body=manifest, headers=headers)
        _expect(result, "PUT", repository, (201,))

        return result.header("Docker-Content-Digest") or sha256_digest(manifest)

    def push_image(self, repository: str, tag: str | None, image: Image | Index) -> str:
        """Push blobs, then children, then the manifest; return its digest."""
        children = image.children if isinstance(image, Index) else ()
        for child in children:
            self.push_image(repository, None, child)
        if isinstance(image, Image):
            for blob in image.blobs:
                self.push_blob(repository, blob)
        reference = tag or image.digest

        return self.push_manifest(
            repository, reference, image.manifest, image.media_type
        )

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """Return a manifest's bytes, media type and digest."""
        headers = {"Accept": MANIFEST_ACCEPT}
        path = f"/v2/{repository}/manifests/{reference}"
        result = self.request("GET", path, headers=headers)
        _expect(result, "GET", repository, (200,))
        media_type = result.header("Content-Type") or ""
        digest = result.header("Docker-Content-Digest") or sha256_digest(result.body)

        return result.body, media_type, digest

    def get_blob(self, repository: str, digest: str) -> bytes:
        """Download a blob, following a redirect without our credentials."""
        url = f"{self.base_url}/v2/{repository}/blobs/{digest}"
        result = self.request("GET", url)
        if result.status in _REDIRECT_STATUSES:
            location = urllib.parse.urljoin(url, result.header("Location") or "")
            # Object stores reject a second credential next to their signed URL.
            result = self._send("GET", location, None, {})

        return _expect(result, "GET", repository, (200,)).body

    def list_tags(self, repository: str) -> list[str]:
        """Return the repository's tags; an unknown repository has none."""
        result = self.request("GET", f"/v2/{repository}/tags/list")
        if _expect(result, "GET", repository, (200, 404)).status == 404:
            return []
        tags: list[str] = json.loads(result.body).get("tags") or []

        return tags

    def list_repositories(self) -> list[str]:
        """Return the registry's catalog."""
        result = _expect(self.request("GET", "/v2/_catalog"), "GET", "", (200,))
        repositories: list[str] = json.loads(result.body).get("repositories") or []
        return repositories

    def delete_manifest(self, repository: str, digest: str) -> None:
        """Delete a manifest by digest."""
        result = self.request("DELETE", f"/v2/{repository}/manifests/{digest}")
        _expect(result, "DELETE", repository, (202,))

    def push_referrer_with_fallback_tag(
        self, repository: str, artifact: Image, subject_digest: str
    ) -> str:
        """Push an artifact and list it in the subject's fallback tag index.

        Registries without the referrers API are handled as in distribution-spec
        "Pushing Manifests with Subject": the tag ``<alg>-<hex>`` of the subject
        names an OCI index of its referrers. Return that index's digest.
        """
        self.push_image(repository, None, artifact)
        tag = subject_digest.replace(":", "-", 1)
        entries = self._fallback_entries(repository, tag)
        if all(entry.get("digest") != artifact.digest for entry in entries):
            entries.append(artifact.descriptor())
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}

        return self.push_manifest(repository, tag, serialize(index), OCI_INDEX)

    def _fallback_entries(self, repository: str, tag: str) -> list[dict[str, Any]]:
        path = f"/v2/{repository}/manifests/{tag}"
        result = self.request("GET", path, headers={"Accept": OCI_INDEX})
        if _expect(result, "GET", repository, (200, 404)).status == 404:
            return []
        entries: list[dict[str, Any]] = json.loads(result.body).get("manifests", [])

        return entries

    def _upload_location(self, repository: str, started: HttpResult) -> str:
        location = started.header("Location")
        if location is None:
            raise LabRegistryError("POST", repository, started)
        # With http.relativeurls the registry sends a path, not a URL.
        return urllib.parse.urljoin(self.base_url + "/", location)

    def _answer_challenge(self, result: HttpResult) -> str | None:
        challenge = result.header("WWW-Authenticate") or ""
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic" and self.credentials is not None:
            return self.credentials.basic_header()
        if scheme == "bearer":
            return self._fetch_token(dict(_CHALLENGE_PARAM.findall(challenge)))
        return None

    def _fetch_token(self, challenge: Mapping[str, str]) -> str | None:
        query = [
            (key, challenge[key]) for key in ("service", "scope") if key in challenge
        ]
        url = f"{challenge['realm']}?{urllib.parse.urlencode(query)}"
        headers = {}
        if self.credentials is not None:
            headers["Authorization"] = self.credentials.basic_header()
        result = self._send("GET", url, None, headers)
        if result.status != 200:
            return None
        answer: dict[str, str] = json.loads(result.body)
        token = answer.get("token") or answer["access_token"]

        return f"Bearer {token}"

    def _send(
        self,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> HttpResult:
        parts = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(
            parts.hostname or "", parts.port, timeout=self.timeout_s
        )
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, target, body=body, headers=dict(headers))
            response = connection.getresponse()
            data = response.read()
            lowered = {name.lower(): value for name, value in response.getheaders()}
        finally:
            connection.close()

        return HttpResult(response.status, lowered, data)


def _expect(
    result: HttpResult, method: str, repository: str, statuses: Sequence[int]
) -> HttpResult:
    if result.status not in statuses:
        raise LabRegistryError(method, repository, result)
    return result


def push_blob(
    url: str, repository: str, blob: Blob, *, credentials: Credentials | None = None
) -> None:
    """Upload a blob unless the registry already has it."""
    LabClient(url, credentials=credentials).push_blob(repository, blob)


def push_manifest(
    url: str,
    repository: str,
    reference: str,
    manifest: bytes,
    media_type: str,
    *,
    credentials: Credentials | None = None,
) -> str:
    """Put a manifest under a tag or digest and return its digest."""
    client = LabClient(url, credentials=credentials)
    return client.push_manifest(repository, reference, manifest, media_type)


def push_image(
    url: str,
    repository: str,
    tag: str | None,
    image: Image | Index,
    *,
    credentials: Credentials | None = None,
) -> str:
    """Push an image or index with everything it references; return its digest."""
    return LabClient(url, credentials=credentials).push_image(repository, tag, image)


def push_referrer_with_fallback_tag(
    url: str,
    repository: str,
    artifact: Image,
    subject_digest: str,
    *,
    credentials: Credentials | None = None,
) -> str:
    """Push an artifact and add it to the subject's fallback tag index."""
    client = LabClient(url, credentials=credentials)
    return client.push_referrer_with_fallback_tag(repository, artifact, subject_digest)


def push_corpus(
    url: str,
    corpus: Iterable[CorpusEntry],
    *,
    credentials: Credentials | None = None,
) -> None:
    """Push every image of a corpus to its repository and tag."""
    client = LabClient(url, credentials=credentials)
    for entry in corpus:
        client.push_image(entry.repository, entry.tag, entry.image)


def get_manifest(
    url: str,
    repository: str,
    reference: str,
    *,
    credentials: Credentials | None = None,
) -> tuple[bytes, str, str]:
    """Return a manifest's bytes, media type and digest."""
    return LabClient(url, credentials=credentials).get_manifest(repository, reference)


def get_blob(
    url: str, repository: str, digest: str, *, credentials: Credentials | None = None
) -> bytes:
    """Download a blob, following a redirect without credentials."""
    return LabClient(url, credentials=credentials).get_blob(repository, digest)


def list_tags(
    url: str, repository: str, *, credentials: Credentials | None = None
) -> list[str]:
    """Return the repository's tags."""
    return LabClient(url, credentials=credentials).list_tags(repository)


def blob_exists(
    url: str, repository: str, digest: str, *, credentials: Credentials | None = None
) -> bool:
    """Tell whether the repository holds the blob."""
    return LabClient(url, credentials=credentials).blob_exists(repository, digest)
