"""A real model, offline (``make test-local-model``): SmolLM2-135M-Instruct on llama-cpp-python's
OpenAI-compatible server (``devstack/local_model.py``), started once per session from
``.devstack/local-model-venv``, and a function process serving the emulator's trigger whose
allowlists hold the local profile, with our prompts pushed and their bounded copies
(``<id>.bounded``: what a 135M model can meet, see ``devstack/local_model.py``). Not part of
``make test`` (marker ``local_model``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import BUCKET, E2E_PROJECT, ROOT, Stack, function_env


@pytest.fixture(scope="session")
def local_model(devstack_logs: Path) -> Iterator[Any]:
    """The running server; a missing venv fails (not skips) the tests: this target exists to run them."""
    from devstack.local_model import LocalModelServer
    from devstack.services import PrerequisiteMissing

    server = LocalModelServer(devstack_logs)
    try:
        server.check_prerequisites()
    except PrerequisiteMissing as exc:
        pytest.fail(f"the local model is not installed: {exc}")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def local_stack(
    firestore_emulator: Any,
    fake_gcs: Any,
    gemini_stub_server: Any,
    local_model: Any,
    functions_port: int,
    devstack_logs: Path,
) -> Iterator[Stack]:
    """The real trigger loop with the local profile pushed and allowlisted."""
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from devstack.local_model import LOCAL_PROFILE, allow_local_model, bounded_prompts, profile_body
    from devstack.services import FunctionsFramework
    from worker_llm_client.catalog.documents import PROFILES, PROMPTS
    from worker_llm_client.catalog.push import push, push_all

    env = allow_local_model(function_env(E2E_PROJECT, firestore_emulator, fake_gcs, gemini_stub_server))
    function = FunctionsFramework(
        "handle_flow_run_event", ROOT / "main.py", "cloudevent", env, devstack_logs, port=functions_port
    )
    function.start()
    db = firestore.Client(project=E2E_PROJECT)
    push_all(db, ROOT)
    push(db, PROFILES, LOCAL_PROFILE, profile_body(local_model.base_url))
    for prompt_id, body in bounded_prompts(ROOT).items():
        push(db, PROMPTS, prompt_id, body)
    firestore_emulator.register_trigger("flow-runs-local-model")
    gcs = storage.Client(project=E2E_PROJECT, credentials=AnonymousCredentials())
    yield Stack(function, db, gcs.bucket(BUCKET))
    gcs.close()
    db.close()
    function.stop()
