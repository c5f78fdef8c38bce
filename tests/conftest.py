"""Session-wide real components: one Firestore emulator (with Eventarc delivery), fake-gcs-server
and the Gemini stub. Integration tests use project ``it-project`` (no trigger registered) and the
e2e tests ``e2e-project`` (trigger registered), so in-process writes never reach the function.
Every test uses unique run ids; the emulator starts once per session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "test-artifacts"
IT_PROJECT = "it-project"
E2E_PROJECT = "e2e-project"
ALLOWED_PROFILES = "flash-json,flash-json-vertex,pro-json,fast,pro,disabled,ghost-model,absent,short-timeout"
ALLOWED_MODELS = "gemini-2.5-flash,gemini-2.5-pro"
CONFIG_CACHE_SECONDS = 1
MODEL_RETRY_BUDGET_SECONDS = 5  # in-invocation retries stay within seconds in the test stacks


def function_env(project: str, emulator: Any, gcs: Any, stub: Any, **overrides: str) -> dict[str, str]:
    """The environment of a function process of the e2e and chaos stacks, for ``project``: the
    demo's, with the test profiles allowed and the test stacks' short cache and retry budget."""
    from worker_llm_client.devstack.demo import function_env as stack_env

    env = stack_env(project, emulator.host_port, gcs.url, stub.base_url, bucket=BUCKET)
    env |= {
        "ALLOWED_LLM_PROFILES": ALLOWED_PROFILES,
        "ALLOWED_MODELS": ALLOWED_MODELS,
        "CONFIG_CACHE_SECONDS": str(CONFIG_CACHE_SECONDS),
        "MODEL_RETRY_BUDGET_SECONDS": str(MODEL_RETRY_BUDGET_SECONDS),
    }
    return env | overrides


@pytest.fixture(autouse=True)
def _fresh_log_context() -> Iterator[None]:
    """Log context is bound per event in production; never let one test's leak into the next."""
    import structlog

    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


@pytest.fixture(scope="session")
def devstack_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("devstack-logs")


@pytest.fixture(scope="session")
def functions_port() -> int:
    from worker_llm_client.devstack.services import free_port

    return free_port()


@pytest.fixture(scope="session")
def firestore_emulator(devstack_logs: Path, functions_port: int) -> Iterator[Any]:
    from worker_llm_client.devstack.services import FirestoreEmulator

    emulator = FirestoreEmulator(E2E_PROJECT, devstack_logs, functions_emulator=f"127.0.0.1:{functions_port}")
    emulator.start()
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = emulator.host_port
    yield emulator
    _restore("FIRESTORE_EMULATOR_HOST", previous)
    emulator.stop()


@pytest.fixture(scope="session")
def fake_gcs(devstack_logs: Path) -> Iterator[Any]:
    from worker_llm_client.devstack.services import FakeGcs

    gcs = FakeGcs(devstack_logs).start()
    gcs.create_bucket(BUCKET)
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = gcs.url
    yield gcs
    _restore("STORAGE_EMULATOR_HOST", previous)
    gcs.stop()


def _restore(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.fixture(scope="session")
def gemini_stub_server() -> Iterator[Any]:
    from worker_llm_client.devstack.gemini_stub import GeminiStub

    with GeminiStub() as stub:
        yield stub


@pytest.fixture
def stub(gemini_stub_server: Any) -> Iterator[Any]:
    """The session's stub with a clean script and request log for this test."""
    gemini_stub_server.reset()
    yield gemini_stub_server
    gemini_stub_server.reset()


@pytest.fixture
def run_id(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
