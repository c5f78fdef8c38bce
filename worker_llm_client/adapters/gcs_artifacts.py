"""GCS artifact store: create-only uploads (``ifGenerationMatch=0``), a 412 means "reuse".

Every failure leaves as a ``StepError``: transient storage errors (5xx, 429, transport, a token
refresh that failed) become ``StorageUnavailable`` (retryable); a refusal (400, 401, 403, or a 404:
the bucket is missing) becomes ``StorageForbidden`` (permanent); anything else ``Internal``. The
sha256 of an object we wrote is kept in its metadata so a reused object needs no download.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import google.cloud.storage as storage
import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_errors
from google.cloud.storage.exceptions import DataCorruption
from google.cloud.storage.retry import DEFAULT_RETRY

from worker_llm_client.core.bounds import MAX_SERVER_MESSAGE, clip
from worker_llm_client.errors import Internal, StepError, StorageForbidden, StorageUnavailable
from worker_llm_client.execution_models import StoredArtifact

UPLOAD_TIMEOUT_SECONDS = 60.0
MAX_NAME_IN_MESSAGE = 200  # an object name too long for GCS is clipped in our message
_TRANSIENT = (
    gexc.ServerError,  # 500, 502, 503, 504 (DeadlineExceeded too)
    gexc.TooManyRequests,
    gexc.RetryError,  # the client's own retries ran out
    requests.exceptions.RequestException,
    auth_errors.TransportError,
    auth_errors.RefreshError,  # the metadata server or token endpoint blipped
    DataCorruption,  # a download whose checksum did not match
    ConnectionError,
    TimeoutError,
)
_REFUSED = (gexc.BadRequest, gexc.Unauthorized, gexc.Forbidden, gexc.NotFound)


class GcsArtifactStore:
    """``retry`` is the client's own transient-error policy (its default gives up after 120 s)."""

    def __init__(self, client: storage.Client, bucket: str, retry: Any = DEFAULT_RETRY) -> None:
        self.bucket = client.bucket(bucket)
        self.retry = retry

    def find(self, object_name: str) -> StoredArtifact | None:
        """The object, or None when it does not exist (the SDK answers None for a missing bucket too:
        the ``put`` that follows is refused)."""
        try:
            blob = self.bucket.get_blob(object_name, timeout=UPLOAD_TIMEOUT_SECONDS, retry=self.retry)
            return None if blob is None else self._stored(blob, created=False)
        except StepError:
            raise
        except Exception as exc:
            raise self._failure("reading", object_name, exc) from exc

    def put(self, object_name: str, data: bytes, metadata: Mapping[str, str]) -> StoredArtifact:
        try:
            blob = self.bucket.blob(object_name)
            blob.metadata = dict(metadata)
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
                raise StorageUnavailable(f"{self._where(object_name)} vanished after a 412") from None
            return existing
        except Exception as exc:
            raise self._failure("writing", object_name, exc) from exc
        return self._stored(blob, created=True, data=data)

    def _stored(self, blob: Any, created: bool, data: bytes | None = None) -> StoredArtifact:
        metadata = dict(blob.metadata or {})
        digest = metadata.get("sha256") or hashlib.sha256(self._download(blob) if data is None else data).hexdigest()
        return StoredArtifact(
            uri=f"gs://{self.bucket.name}/{blob.name}",
            sha256=digest,
            size_bytes=int(blob.size or 0),
            metadata=metadata,
            created=created,
        )

    def _download(self, blob: Any) -> bytes:
        try:
            return bytes(blob.download_as_bytes(timeout=UPLOAD_TIMEOUT_SECONDS, retry=self.retry))
        except gexc.NotFound as exc:  # deleted since its metadata was read: not a missing bucket
            raise StorageUnavailable(f"reading {self._where(blob.name)} failed: it vanished while read") from exc

    def _where(self, object_name: str) -> str:
        return f"gs://{self.bucket.name}/{clip(object_name, MAX_NAME_IN_MESSAGE)}"

    def _failure(self, action: str, object_name: str, exc: Exception) -> StepError:
        where = f"{action} {self._where(object_name)}"
        if isinstance(exc, _REFUSED):
            return StorageForbidden(f"{where} was refused: HTTP {exc.code} {type(exc).__name__}{_server_message(exc)}")
        if isinstance(exc, _TRANSIENT) or (isinstance(exc, gexc.GoogleAPICallError) and exc.code == 408):
            return StorageUnavailable(f"{where} failed: {type(exc).__name__}")
        return Internal.from_exception(exc, where)


def _server_message(exc: gexc.GoogleAPICallError) -> str:
    """``: <the server's own error.message>``, clipped, or nothing when its body has none."""
    try:
        payload = exc.response.json()
    except (AttributeError, TypeError, ValueError):
        return ""
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return f": {clip(message, MAX_SERVER_MESSAGE)}" if isinstance(message, str) and message else ""
