"""The artifact store's error translation through the real storage SDK, against a scripted local
JSON API: fake-gcs-server cannot refuse (403), reject a name (400) or lose an object mid-read."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from worker_llm_client.adapters.gcs_artifacts import GcsArtifactStore
from worker_llm_client.core.bounds import MAX_SERVER_MESSAGE
from worker_llm_client.errors import Internal, StorageForbidden, StorageUnavailable

pytestmark = pytest.mark.integration

BUCKET = "scripted-bucket"
NAME = "flow_runs/run-1/fp.json"
DATA = b'{"report": "secret report body"}'
Answer = tuple[int, bytes]  # status, JSON body
Script = Callable[[str, str], Answer]  # (method, path) -> answer


def google_error(status: int, message: str) -> Answer:
    errors = [{"domain": "global", "reason": "scripted", "message": message}]
    return status, json.dumps({"error": {"code": status, "message": message, "errors": errors}}).encode()


def object_resource(metadata: dict[str, str]) -> Answer:
    resource = {"kind": "storage#object", "bucket": BUCKET, "name": NAME, "generation": "1", "size": str(len(DATA))}
    return 200, json.dumps(resource | {"metadata": metadata}).encode()


class ScriptedGcs:
    """Answers every request with ``script(method, path)``; records ``(method, path)``."""

    def __init__(self) -> None:
        self.script: Script = lambda method, path: google_error(500, "unscripted")
        self.requests: list[tuple[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.requests.append((self.command, self.path))
                status, body = owner.script(self.command, self.path.split("?")[0])
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture(scope="module")
def gcs() -> Iterator[ScriptedGcs]:
    server = ScriptedGcs()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture(autouse=True)
def _no_background_bucket_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """google-cloud-storage 3.17 looks the bucket up in a background thread on first use (for its
    telemetry): off here, so that the requests seen are the store's own and none outlives a test."""
    monkeypatch.setenv("DISABLE_GCS_PYTHON_CLIENT_OTEL_BUCKET_METADATA", "true")


def _token() -> Any:
    from google.oauth2.credentials import Credentials

    class StaticToken(Credentials):
        """A bearer token that refreshes (as on a 401) without a token endpoint."""

        def refresh(self, request: Any) -> None:
            self.token = "token"

    return StaticToken(token="token")  # type: ignore[no-untyped-call]


def store_for(
    gcs: ScriptedGcs, script: Script, credentials: Any = None, retry: Any = "short"
) -> Iterator[GcsArtifactStore]:
    """A store on a client of the scripted server (its retries give up within 0.3 s), closed after."""
    import google.cloud.storage as storage
    from google.cloud.storage.retry import DEFAULT_RETRY

    gcs.script, gcs.requests[:] = script, []
    client = storage.Client(project="it", credentials=credentials or _token(), client_options={"api_endpoint": gcs.url})
    short = DEFAULT_RETRY.with_timeout(0.3).with_delay(0.01, 0.02)
    yield GcsArtifactStore(client, BUCKET, retry=short if retry == "short" else retry)
    client.close()


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (400, "The object name is too long."),
        (401, "Anonymous caller does not have storage.objects.create access."),
        (403, "fn@p.iam.gserviceaccount.com does not have storage.objects.create access to the object."),
        (404, "The specified bucket does not exist."),
    ],
)
def test_a_refused_write_is_storage_forbidden(gcs: ScriptedGcs, status: int, message: str) -> None:
    for store in store_for(gcs, lambda method, path: google_error(status, message)):
        with pytest.raises(StorageForbidden) as info:
            store.put(NAME, DATA, {"sha256": "abc"})
    error = info.value
    assert error.code == "STORAGE_FORBIDDEN" and not error.retryable
    assert error.message.startswith(f"writing gs://{BUCKET}/{NAME} was refused: HTTP {status} ")
    assert error.message.endswith(f": {message}")
    assert "secret report body" not in error.message
    uploads = [path for _, path in gcs.requests if path.startswith(f"/upload/storage/v1/b/{BUCKET}/o?")]
    assert len(gcs.requests) == len(uploads) == (3 if status == 401 else 1)  # a 401: google-auth refreshes twice


@pytest.mark.parametrize("status", [400, 401, 403])
def test_a_refused_read_is_storage_forbidden(gcs: ScriptedGcs, status: int) -> None:
    for store in store_for(gcs, lambda method, path: google_error(status, "no")):
        with pytest.raises(StorageForbidden, match=rf"^reading gs://{BUCKET}/{NAME} was refused: HTTP {status} "):
            store.find(NAME)


def test_a_missing_object_is_still_none(gcs: ScriptedGcs) -> None:
    for store in store_for(gcs, lambda method, path: google_error(404, "No such object")):
        assert store.find(NAME) is None


def test_the_servers_message_and_a_long_name_are_clipped(gcs: ScriptedGcs) -> None:
    long_name = "n" * 2000
    for store in store_for(gcs, lambda method, path: google_error(400, "m" * 100_000)):
        with pytest.raises(StorageForbidden) as info:
            store.put(long_name, DATA, {})
    clipped = "m" * (MAX_SERVER_MESSAGE - 1) + "…"
    assert clipped in info.value.message and "m" * MAX_SERVER_MESSAGE not in info.value.message
    assert (
        f"gs://{BUCKET}/{'n' * 199}… was refused: HTTP 400 BadRequest: " in info.value.message
        and len(info.value.message) < 1024
    )


@pytest.mark.parametrize(("status", "kind"), [(503, "RetryError"), (429, "RetryError"), (500, "RetryError")])
def test_a_transient_failure_is_storage_unavailable(gcs: ScriptedGcs, status: int, kind: str) -> None:
    for store in store_for(gcs, lambda method, path: google_error(status, "busy")):
        with pytest.raises(StorageUnavailable, match=kind) as info:
            store.put(NAME, DATA, {"sha256": "abc"})
        assert info.value.retryable
        with pytest.raises(StorageUnavailable):
            store.find(NAME)


def test_an_unforeseen_status_is_internal_naming_its_type_only(gcs: ScriptedGcs) -> None:
    for store in store_for(gcs, lambda method, path: google_error(409, "secret report body")):
        with pytest.raises(Internal) as info:
            store.put(NAME, DATA, {"sha256": "abc"})
    assert info.value.message == f"unexpected google.api_core.exceptions.Conflict while writing gs://{BUCKET}/{NAME}"


def _metadata_then(download: Answer) -> Script:
    """The object's resource without a sha256 in its metadata, then ``download`` for its bytes."""
    return lambda method, path: download if path.startswith("/download/") else object_resource({"runId": "r"})


def test_the_digest_download_is_translated_too(gcs: ScriptedGcs) -> None:
    from worker_llm_client.core.canonical import sha256_hex

    for store in store_for(gcs, _metadata_then((200, DATA))):
        found = store.find(NAME)
        assert found is not None and found.sha256 == sha256_hex(DATA)
    for store in store_for(gcs, _metadata_then(google_error(403, "no"))):
        with pytest.raises(StorageForbidden, match=r"^reading gs://\S+ was refused: HTTP 403 Forbidden: no$"):
            store.find(NAME)
    for store in store_for(gcs, _metadata_then(google_error(404, "No such object"))):
        with pytest.raises(StorageUnavailable, match="vanished while read"):
            store.find(NAME)
    # no retries: the SDK leaves the sockets of a retried download's failed attempts to the garbage collector
    for store in store_for(gcs, _metadata_then(google_error(503, "busy")), retry=None):
        with pytest.raises(StorageUnavailable, match="ServiceUnavailable"):
            store.find(NAME)


def test_a_credentials_refresh_failure_is_storage_unavailable(gcs: ScriptedGcs) -> None:
    from google.auth.exceptions import RefreshError
    from google.oauth2.credentials import Credentials

    class TokenEndpointDown(Credentials):
        def refresh(self, request: Any) -> None:
            raise RefreshError("metadata server answered 500")

    for store in store_for(gcs, lambda method, path: object_resource({}), TokenEndpointDown(token=None)):  # type: ignore[no-untyped-call]
        with pytest.raises(StorageUnavailable, match="RefreshError") as info:
            store.put(NAME, DATA, {"sha256": "abc"})
        assert info.value.retryable
        with pytest.raises(StorageUnavailable, match="RefreshError"):
            store.find(NAME)
    assert gcs.requests == []
