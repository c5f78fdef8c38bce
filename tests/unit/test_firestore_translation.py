"""The Firestore config store's error translation, with a stand-in for the google client."""

from __future__ import annotations

from typing import Any

import pytest
from google.api_core import exceptions as gexc

from worker_llm_client.adapters.firestore_catalog import FirestoreCatalog
from worker_llm_client.errors import StorageUnavailable


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
