"""Session-wide real components: one Firestore emulator (with Eventarc delivery), fake-gcs-server,
the Gemini stub and an OTLP trace receiver. Integration tests use project ``it-project`` (no trigger
registered) and the e2e tests ``e2e-project`` (trigger registered), so in-process writes never reach
the function. Every test uses unique run ids; the emulator starts once per session.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import BUCKET, E2E_PROJECT


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
    from devstack.services import free_port

    return free_port()


@pytest.fixture(scope="session")
def firestore_emulator(devstack_logs: Path, functions_port: int) -> Iterator[Any]:
    from devstack.services import FirestoreEmulator

    emulator = FirestoreEmulator(E2E_PROJECT, devstack_logs, functions_emulator=f"127.0.0.1:{functions_port}")
    emulator.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("FIRESTORE_EMULATOR_HOST", emulator.host_port)
        yield emulator
    emulator.stop()


@pytest.fixture(scope="session")
def fake_gcs(devstack_logs: Path) -> Iterator[Any]:
    from devstack.services import FakeGcs

    gcs = FakeGcs(devstack_logs).start()
    gcs.create_bucket(BUCKET)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", gcs.url)
        yield gcs
    gcs.stop()


@pytest.fixture(scope="session")
def gemini_stub_server() -> Iterator[Any]:
    from devstack.gemini_stub import GeminiStub

    with GeminiStub() as stub:
        yield stub


@pytest.fixture(scope="session")
def openai_stub_server() -> Iterator[Any]:
    from devstack.openai_stub import OpenAiStub

    with OpenAiStub() as stub:
        yield stub


@pytest.fixture(scope="session")
def anthropic_stub_server() -> Iterator[Any]:
    from devstack.anthropic_stub import AnthropicStub

    with AnthropicStub() as stub:
        yield stub


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[Any]:
    """Where function processes of the e2e stack export their spans (OTLP/HTTP)."""
    from devstack.otlp_receiver import OtlpReceiver

    with OtlpReceiver() as receiver:
        yield receiver


@pytest.fixture
def stub(gemini_stub_server: Any) -> Iterator[Any]:
    """The session's stub with a clean script and request log for this test."""
    gemini_stub_server.reset()
    yield gemini_stub_server
    gemini_stub_server.reset()


@pytest.fixture
def openai_stub(openai_stub_server: Any) -> Iterator[Any]:
    """The session's OpenAI stub with a clean script and request log for this test."""
    openai_stub_server.reset()
    yield openai_stub_server
    openai_stub_server.reset()


@pytest.fixture
def anthropic_stub(anthropic_stub_server: Any) -> Iterator[Any]:
    """The session's Anthropic stub with a clean script and request log for this test."""
    anthropic_stub_server.reset()
    yield anthropic_stub_server
    anthropic_stub_server.reset()


@pytest.fixture
def run_id(request: pytest.FixtureRequest) -> str:
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}".replace("[", "-").replace("]", "")
