"""The real trigger loop: writes to the emulator reach functions-framework through the
emulator's own Eventarc delivery. One function process per session; it exports its spans to the
session's OTLP receiver (``stack.traces``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import BUCKET, E2E_PROJECT, ROOT, Stack, function_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def stack(
    firestore_emulator: Any,
    fake_gcs: Any,
    gemini_stub_server: Any,
    openai_stub_server: Any,
    anthropic_stub_server: Any,
    otlp_receiver: Any,
    functions_port: int,
    devstack_logs: Path,
) -> Iterator[Stack]:
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from devstack.services import FunctionsFramework
    from worker_llm_client.catalog.push import push_all

    env = function_env(
        E2E_PROJECT,
        firestore_emulator,
        fake_gcs,
        gemini_stub_server,
        traces=otlp_receiver,
        openai=openai_stub_server,
        anthropic=anthropic_stub_server,
    )
    function = FunctionsFramework(
        "handle_flow_run_event", ROOT / "main.py", "cloudevent", env, devstack_logs, port=functions_port
    )
    function.start()
    db = firestore.Client(project=E2E_PROJECT)
    push_all(db, ROOT)
    firestore_emulator.register_trigger("flow-runs-e2e")
    gcs = storage.Client(project=E2E_PROJECT, credentials=AnonymousCredentials())
    yield Stack(function, db, gcs.bucket(BUCKET), otlp_receiver)
    gcs.close()
    db.close()
    function.stop()
