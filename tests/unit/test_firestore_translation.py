"""The Firestore adapters' error translation, with stand-ins for the google client."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.auth.exceptions import RefreshError

from tests.builders import T0
from worker_llm_client.adapters.firestore_catalog import FirestoreCatalog
from worker_llm_client.adapters.firestore_runs import FirestoreRunStore
from worker_llm_client.errors import RunStoreUnavailable, RunTooLarge, StorageUnavailable


class _Outage:
    """Just enough of firestore.Client for one read that fails the way an outage does."""

    def collection(self, name: str) -> _Outage:
        return self

    def document(self, name: str) -> _Outage:
        return self

    def get(self, **kwargs: Any) -> None:
        raise gexc.RetryError("deadline exceeded while retrying", gexc.ServiceUnavailable("unavailable"))

    def get_all(self, refs: Any, **kwargs: Any) -> None:
        self.get()


@pytest.mark.parametrize("read", ["prompt", "profile", "both"])
def test_an_outage_while_reading_config_is_retryable_storage_unavailable(read: str) -> None:
    store = FirestoreCatalog(_Outage())  # type: ignore[arg-type]
    reads = {
        "prompt": lambda: store.get_prompt("p", None),
        "profile": lambda: store.get_profile("f"),
        "both": lambda: store.get_prompt_and_profile("p", None, "f"),
    }
    with pytest.raises(StorageUnavailable, match="RetryError") as info:
        reads[read]()
    assert info.value.retryable


class _Failing:
    """Just enough of firestore.Client for the run store, every call failing with ``error``."""

    _document_path = "projects/p/databases/(default)/documents/flow_runs/r1"
    _rpc_metadata = ()

    def __init__(self, error: Exception) -> None:
        self.error = error

    @property
    def _firestore_api(self) -> _Failing:  # the raw read of a run
        return self

    def get_document(self, **kwargs: Any) -> None:
        raise self.error

    def update(self, updates: Any, **kwargs: Any) -> None:
        raise self.error

    def stream(self) -> Any:
        raise self.error

    def collection(self, name: str) -> _Failing:
        return self

    def document(self, name: str) -> _Failing:
        return self

    def write_option(self, **kwargs: Any) -> None:
        return None

    def where(self, **kwargs: Any) -> _Failing:
        return self

    def order_by(self, field: str) -> _Failing:
        return self

    def limit(self, count: int) -> _Failing:
        return self

    def select(self, fields: Any) -> _Failing:
        return self


RUN_STORE_CALLS = {
    "get_run": lambda store: store.get_run("r1"),
    "write_if_unchanged": lambda store: store.write_if_unchanged("r1", T0, {("status",): "RUNNING"}),
    "due_runs": lambda store: store.due_runs(T0, 10),
}


@pytest.mark.parametrize("call", sorted(RUN_STORE_CALLS))
@pytest.mark.parametrize(
    "error",
    [
        gexc.ServiceUnavailable("unavailable"),
        gexc.PermissionDenied("the service account lost its role"),
        gexc.InvalidArgument("a request the store did not foresee"),
        ConnectionError("reset by peer"),
        RefreshError("token endpoint"),
    ],
    ids=type,
)
def test_every_firestore_error_of_the_run_store_is_run_store_unavailable(call: str, error: Exception) -> None:
    """One rule at the edge: the entry point answers 5xx and Eventarc redelivers (a finalize
    retries); no google type reaches the use case."""
    store = FirestoreRunStore(_Failing(error))  # type: ignore[arg-type]
    with pytest.raises(RunStoreUnavailable, match=type(error).__name__) as info:
        RUN_STORE_CALLS[call](store)
    assert "r1" in str(info.value) or call == "due_runs"


def test_a_write_the_run_cannot_hold_is_run_too_large() -> None:
    store = FirestoreRunStore(_Failing(gexc.InvalidArgument("too many index entries for entity")))  # type: ignore[arg-type]
    with pytest.raises(RunTooLarge, match="cannot hold"):
        RUN_STORE_CALLS["write_if_unchanged"](store)
