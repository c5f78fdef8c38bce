"""The benchmarks' RPC counter against the real clients: one request sent is one counted."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from benchmarks.measure import counting_rpcs
from tests.stacks import BUCKET, IT_PROJECT

pytestmark = pytest.mark.integration


def test_every_firestore_and_storage_request_is_counted_once(firestore_emulator: Any, fake_gcs: Any) -> None:
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    db = firestore.Client(project=IT_PROJECT)
    gcs = storage.Client(project=IT_PROJECT, credentials=AnonymousCredentials())
    ref = db.collection("bench").document(uuid.uuid4().hex)
    with counting_rpcs() as rpcs:
        written = ref.set({"a": 1})
        assert rpcs.reset() == {"Commit": 1}
        ref.update({"a": 2}, option=db.write_option(last_update_time=written.update_time))
        list(db.get_all([ref, db.collection("bench").document("absent")]))
        assert rpcs.reset() == {"Commit": 1, "BatchGetDocuments": 1}

        @firestore.transactional
        def bump(transaction: Any) -> None:
            ref.get(transaction=transaction)
            transaction.update(ref, {"a": 3})

        bump(db.transaction())
        assert rpcs.reset() == {"BeginTransaction": 1, "BatchGetDocuments": 1, "Commit": 1}
        bucket = gcs.bucket(BUCKET)
        bucket.blob(f"bench/{uuid.uuid4().hex}").upload_from_string(b"{}", if_generation_match=0)
        assert rpcs.reset().get("HTTP POST") == 1  # a new client's first request may add one GET
        bucket.blob(f"bench/{uuid.uuid4().hex}").upload_from_string(b"{}", if_generation_match=0)
        assert rpcs.total == 1 and rpcs.reset() == {"HTTP POST": 1}
    ref.set({"a": 4})
    assert rpcs.total == 0  # uninstalled on exit
    gcs.close()
    db.close()
