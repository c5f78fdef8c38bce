"""The real trigger loop: writes to the emulator reach functions-framework through the
emulator's own Eventarc delivery. One function process per session."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BUCKET, E2E_PROJECT, ROOT, function_env

pytestmark = pytest.mark.e2e


@dataclass
class Stack:
    function: Any
    db: Any
    bucket: Any

    def logs(self) -> list[dict[str, Any]]:
        return self.function.json_log_lines()  # type: ignore[no-any-return]

    def wait_for_log(self, done: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [line for line in self.logs() if done(line)]
            if found:
                return found[0]
            time.sleep(0.1)
        raise AssertionError(f"no such log line\n{self.function.log_tail()}")

    def steps(self, run_id: str) -> dict[str, Any]:
        return self.db.collection("flow_runs").document(run_id).get().to_dict()["steps"]  # type: ignore[no-any-return]

    def wait_for(self, run_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            steps = self.steps(run_id)
            if done(steps):
                return steps
            time.sleep(0.1)
        raise AssertionError(
            f"run {run_id} did not settle: {json.dumps(self.steps(run_id), default=str)[:2000]}\n{self.function.log_tail()}"
        )


@pytest.fixture(scope="session")
def stack(
    firestore_emulator: Any, fake_gcs: Any, gemini_stub_server: Any, functions_port: int, devstack_logs: Path
) -> Iterator[Stack]:
    import google.cloud.storage as storage
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import firestore

    from worker_llm_client.config_push import push_all
    from worker_llm_client.devstack.services import FunctionsFramework

    env = function_env(E2E_PROJECT, firestore_emulator, fake_gcs, gemini_stub_server)
    function = FunctionsFramework(
        "handle_flow_run_event", ROOT / "main.py", "cloudevent", env, devstack_logs, port=functions_port
    )
    function.start()
    db = firestore.Client(project=E2E_PROJECT)
    push_all(db, ROOT)
    firestore_emulator.register_trigger("flow-runs-e2e")
    gcs = storage.Client(project=E2E_PROJECT, credentials=AnonymousCredentials())
    yield Stack(function, db, gcs.bucket(BUCKET))
    gcs.close()
    db.close()
    function.stop()
