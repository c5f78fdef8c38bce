"""The artifact store against fake-gcs-server, which honours ifGenerationMatch like GCS."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.stacks import BUCKET
from worker_llm_client.adapters.gcs_artifacts import GcsArtifactStore
from worker_llm_client.core.canonical import sha256_hex

pytestmark = pytest.mark.integration


@pytest.fixture
def store(bucket: Any) -> GcsArtifactStore:
    return GcsArtifactStore(bucket.client, BUCKET)


def test_put_creates_then_reuses_on_412(store: GcsArtifactStore, bucket: Any) -> None:
    name = f"flow_runs/it/{uuid.uuid4().hex}/fp.json"
    first = store.put(name, b'{"a": 1}', {"sha256": sha256_hex(b'{"a": 1}'), "runId": "it"})
    second = store.put(name, b'{"a": 2}', {"sha256": sha256_hex(b'{"a": 2}'), "runId": "other"})
    assert first.created and not second.created
    assert second.sha256 == first.sha256 and second.size_bytes == 8 and second.metadata["runId"] == "it"
    assert bucket.blob(name).download_as_bytes() == b'{"a": 1}'  # never overwritten
    assert first.uri == f"gs://{BUCKET}/{name}"


def test_find(store: GcsArtifactStore) -> None:
    name = f"flow_runs/it/{uuid.uuid4().hex}/fp.json"
    assert store.find(name) is None
    store.put(name, b"{}", {"sha256": sha256_hex(b"{}")})
    found = store.find(name)
    assert found is not None and not found.created and found.sha256 == sha256_hex(b"{}")


def test_sha256_is_computed_when_metadata_lacks_it(store: GcsArtifactStore, bucket: Any) -> None:
    name = f"flow_runs/it/{uuid.uuid4().hex}/foreign.json"
    bucket.blob(name).upload_from_string(b'{"x": true}')
    found = store.find(name)
    assert found is not None and found.sha256 == sha256_hex(b'{"x": true}')


def test_an_unreachable_gcs_is_storage_unavailable_not_a_crash() -> None:
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.storage.retry import DEFAULT_RETRY

    from devstack.services import free_port
    from worker_llm_client.errors import StorageUnavailable

    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    client = storage.Client(project="it", credentials=AnonymousCredentials(), client_options={"api_endpoint": dead})
    store = GcsArtifactStore(client, BUCKET, retry=DEFAULT_RETRY.with_timeout(0.5))
    with pytest.raises(StorageUnavailable, match="RetryError") as info:
        store.put("flow_runs/it/x/fp.json", b"{}", {"sha256": sha256_hex(b"{}")})
    assert info.value.retryable
    with pytest.raises(StorageUnavailable):
        store.find("flow_runs/it/x/fp.json")
    client.close()


def test_writing_to_a_bucket_that_does_not_exist_is_storage_forbidden(bucket: Any) -> None:
    from worker_llm_client.errors import StorageForbidden

    missing = f"no-such-bucket-{uuid.uuid4().hex[:8]}"
    store = GcsArtifactStore(bucket.client, missing)
    name = f"flow_runs/it/{uuid.uuid4().hex}/fp.json"
    assert store.find(name) is None  # the SDK's get_blob answers None for a missing bucket too
    with pytest.raises(StorageForbidden) as info:
        store.put(name, b'{"secret": "report body"}', {"sha256": sha256_hex(b"{}")})
    assert info.value.code == "STORAGE_FORBIDDEN" and not info.value.retryable
    assert info.value.message.startswith(f"writing gs://{missing}/{name} was refused: HTTP 404 NotFound")
    assert "report body" not in info.value.message


def test_a_put_without_a_digest_in_its_metadata_hashes_what_it_wrote(store: GcsArtifactStore) -> None:
    stored = store.put(f"flow_runs/it/{uuid.uuid4().hex}/fp.json", b'{"b": 2}', {"runId": "it"})
    assert stored.created and stored.sha256 == sha256_hex(b'{"b": 2}')


def test_an_unusable_object_name_is_internal_not_a_crash(store: GcsArtifactStore) -> None:
    from worker_llm_client.errors import Internal

    with pytest.raises(Internal, match=r"^unexpected builtins\.ValueError while reading gs://test-artifacts/$"):
        store.find("")
