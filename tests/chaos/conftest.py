"""Chaos tests: faults injected into the real local stack (Firestore emulator with Eventarc
delivery, fake-gcs-server, the Gemini stub, functions-framework processes).

Tests that go through the emulator's trigger use ``stack``: the same function process and trigger
as tests/e2e. Tests that crash a worker or call the sweeper start processes of their own on a
project with no trigger registered and deliver the CloudEvent themselves, so the trigger's function
never sees their runs and nothing else re-drives them. The figures each test records are written to
``.devstack/chaos-results.json`` when the session ends (``make chaos`` prints that file).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import (
    BUCKET,
    CONFIG_CACHE_SECONDS,
    E2E_PROJECT,
    MODEL_RETRY_BUDGET_SECONDS,
    ROOT,
    FunctionProcesses,
    Stack,
    function_env,
)

CHAOS_RESULTS = ROOT / ".devstack" / "chaos-results.json"
E2E_TRIGGER = "flow-runs-e2e"  # tests/e2e's id: registering it again replaces it, never doubles delivery
PASSED = pytest.StashKey[bool]()


@pytest.fixture(scope="session")
def bucket(fake_gcs: Any) -> Iterator[Any]:
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials

    client = storage.Client(project=E2E_PROJECT, credentials=AnonymousCredentials())
    yield client.bucket(BUCKET)
    client.close()


@pytest.fixture(scope="package")
def stack(
    firestore_emulator: Any,
    fake_gcs: Any,
    gemini_stub_server: Any,
    functions_port: int,
    devstack_logs: Path,
    bucket: Any,
) -> Iterator[Stack]:
    """tests/e2e's ``stack``, package-scoped. A conftest fixture is visible only below its folder,
    and a second session-scoped copy would start a second function on the trigger's port when the
    whole suite runs: this one stops when tests/chaos is done, before tests/e2e starts its own (and
    reuses that one if it is already serving, e.g. ``pytest tests/e2e tests/chaos``)."""
    from google.cloud import firestore

    from devstack.services import FunctionsFramework, accepts_tcp
    from worker_llm_client.catalog.push import push_all

    env = function_env(E2E_PROJECT, firestore_emulator, fake_gcs, gemini_stub_server)
    function = FunctionsFramework(
        "handle_flow_run_event", ROOT / "main.py", "cloudevent", env, devstack_logs, port=functions_port
    )
    owned = not accepts_tcp("127.0.0.1", functions_port)
    if owned:
        function.start()
    db = firestore.Client(project=E2E_PROJECT)
    push_all(db, ROOT)
    firestore_emulator.register_trigger(E2E_TRIGGER)
    yield Stack(function, db, bucket)
    db.close()
    if owned:
        function.stop()


@pytest.fixture
def functions(
    firestore_emulator: Any,
    fake_gcs: Any,
    gemini_stub_server: Any,
    anthropic_stub_server: Any,
    openai_stub_server: Any,
    tmp_path: Path,
) -> Iterator[Any]:
    processes = FunctionProcesses.on(
        tmp_path,
        firestore_emulator,
        fake_gcs,
        gemini_stub_server,
        anthropic=anthropic_stub_server,
        openai=openai_stub_server,
    )
    yield processes
    processes.stop_all()


@pytest.fixture(scope="module")
def module_functions(
    firestore_emulator: Any,
    fake_gcs: Any,
    gemini_stub_server: Any,
    anthropic_stub_server: Any,
    openai_stub_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    processes = FunctionProcesses.on(
        tmp_path_factory.mktemp("functions"),
        firestore_emulator,
        fake_gcs,
        gemini_stub_server,
        anthropic=anthropic_stub_server,
        openai=openai_stub_server,
    )
    yield processes
    processes.stop_all()


@pytest.fixture(scope="session")
def chaos_db(firestore_emulator: Any) -> Iterator[Callable[[str], Any]]:
    """A Firestore client for a project without a trigger, with prompts and profiles pushed once."""
    from google.cloud import firestore

    from worker_llm_client.catalog.push import push_all

    clients: dict[str, Any] = {}

    def client(project: str) -> Any:
        if project not in clients:
            clients[project] = firestore.Client(project=project)
            push_all(clients[project], ROOT)
        return clients[project]

    yield client
    for opened in clients.values():
        opened.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    report = yield
    if report.when == "call":
        item.stash[PASSED] = report.passed
    return report


@pytest.fixture(scope="session")
def chaos_results() -> Iterator[dict[str, Any]]:
    results: dict[str, Any] = {}
    yield results
    if not results:
        return
    settings = {
        "MODEL_RETRY_BUDGET_SECONDS": MODEL_RETRY_BUDGET_SECONDS,
        "CONFIG_CACHE_SECONDS": CONFIG_CACHE_SECONDS,
    }
    document = {"generatedAt": datetime.now(UTC).isoformat(timespec="seconds"), "settings": settings}
    CHAOS_RESULTS.parent.mkdir(parents=True, exist_ok=True)
    CHAOS_RESULTS.write_text(json.dumps(document | {"tests": results}, indent=2) + "\n", encoding="utf-8")


@pytest.fixture
def figures(chaos_results: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """This test's figures for the docs; wall seconds and the outcome are added at teardown."""
    record: dict[str, Any] = {}
    started = time.monotonic()
    yield record
    record["wallSeconds"] = round(time.monotonic() - started, 2)
    record["passed"] = request.node.stash.get(PASSED, False)
    chaos_results[request.node.name] = record
