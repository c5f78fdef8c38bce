"""GCS artifact store: create-only uploads (``ifGenerationMatch=0``), a 412 means "reuse".

Transient storage errors become ``StorageUnavailable`` (retryable); the sha256 of an object we
wrote is kept in its metadata so a reused object needs no download.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import google.cloud.storage as storage
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_errors
from google.cloud.storage.retry import DEFAULT_RETRY

from worker_llm_client.errors import StorageUnavailable
from worker_llm_client.report_models import StoredArtifact

UPLOAD_TIMEOUT_SECONDS = 60.0
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.TooManyRequests,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.BadGateway,
    gexc.RetryError,  # the client's own retries ran out
    requests.exceptions.RequestException,
    auth_errors.TransportError,
    ConnectionError,
    TimeoutError,
)


class GcsArtifactStore:
    """``retry`` is the client's own transient-error policy (its default gives up after 120 s)."""

    def __init__(self, client: storage.Client, bucket: str, retry: Any = DEFAULT_RETRY) -> None:
        self.bucket = client.bucket(bucket)
        self.retry = retry

    def find(self, object_name: str) -> StoredArtifact | None:
        try:
            blob = self.bucket.get_blob(object_name, timeout=UPLOAD_TIMEOUT_SECONDS, retry=self.retry)
            return None if blob is None else self._stored(blob, created=False)
        except _TRANSIENT as exc:
            raise _unavailable("reading", self.bucket.name, object_name, exc) from exc

    def put(self, object_name: str, data: bytes, metadata: Mapping[str, str]) -> StoredArtifact:
        blob = self.bucket.blob(object_name)
        blob.metadata = dict(metadata)
        try:
            blob.upload_from_string(
                data,
                content_type="application/json",
                if_generation_match=0,
                timeout=UPLOAD_TIMEOUT_SECONDS,
                retry=self.retry,
            )
        except gexc.PreconditionFailed:
            existing = self.find(object_name)
            if existing is None:
                raise StorageUnavailable(f"gs://{self.bucket.name}/{object_name} vanished after a 412") from None
            return existing
        except _TRANSIENT as exc:
            raise _unavailable("writing", self.bucket.name, object_name, exc) from exc
        return self._stored(blob, created=True)

    def _stored(self, blob: Any, created: bool) -> StoredArtifact:
        metadata = dict(blob.metadata or {})
        digest = metadata.get("sha256") or hashlib.sha256(blob.download_as_bytes()).hexdigest()
        return StoredArtifact(
            uri=f"gs://{self.bucket.name}/{blob.name}",
            sha256=digest,
            size_bytes=int(blob.size or 0),
            metadata=metadata,
            created=created,
        )


def _unavailable(action: str, bucket: str, name: str, exc: BaseException) -> StorageUnavailable:
    return StorageUnavailable(f"{action} gs://{bucket}/{name} failed: {type(exc).__name__}")
