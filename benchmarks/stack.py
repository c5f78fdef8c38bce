"""The local stack the Firestore-backed benchmarks run on: the Firestore emulator (delivering
Eventarc triggers to one port), fake-gcs-server, the Gemini stub, and functions-framework processes
serving ``main.py`` with the environment a deployed function would have. Logs go to
``.devstack/bench-logs/``; everything started is stopped on exit.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import ROOT
from devstack.demo import function_env
from devstack.gemini_stub import GeminiStub
from devstack.services import (
    FakeGcs,
    FirestoreEmulator,
    FunctionsFramework,
    free_port,
    scoped_environ,
)

LOG_DIR = ROOT / ".devstack" / "bench-logs"
BUCKET = "bench-artifacts"
PROFILE = "flash-json"
PROMPT = "weekly_report"


def report_step(team: str) -> dict[str, Any]:
    """One READY LLM_REPORT step; ``team`` makes its request (and artifact) unique."""
    from devstack.documents import step_document

    variables = {"team": team, "week": "2026-W47", "notes": ["cut p95 by 30%", "one incident"]}
    return step_document(prompt_id=PROMPT, profile=PROFILE, vars=variables)


@dataclass
class BenchStack:
    log_dir: Path
    emulator: FirestoreEmulator
    gcs: FakeGcs
    stub: GeminiStub
    functions_port: int
    clients: list[Any] = field(default_factory=list)
    functions: list[FunctionsFramework] = field(default_factory=list)

    def env(self, project: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
        """What a function of ``project`` on this stack is configured with: the demo's (the
        governance allowlists, the emulators, the stub), defaults elsewhere, then ``overrides``."""
        return function_env(project, self.emulator.host_port, self.gcs.url, self.stub.base_url, BUCKET) | dict(
            overrides or {}
        )

    def client_env(self) -> contextlib.AbstractContextManager[None]:
        """The emulator hosts, set while a client is built (clients read them then)."""
        return scoped_environ(FIRESTORE_EMULATOR_HOST=self.emulator.host_port, STORAGE_EMULATOR_HOST=self.gcs.url)

    def db(self, project: str) -> Any:
        """A Firestore client for ``project`` with prompts and profiles pushed."""
        from google.cloud import firestore

        from worker_llm_client.catalog.push import push_all

        with self.client_env():
            client = firestore.Client(project=project)
        push_all(client, ROOT)
        self.clients.append(client)
        return client

    def bucket(self, project: str) -> Any:
        import google.cloud.storage as storage
        from google.auth.credentials import AnonymousCredentials

        with self.client_env():
            client = storage.Client(project=project, credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
        self.clients.append(client)
        return client.bucket(BUCKET)

    def function(
        self, project: str, name: str, env: Mapping[str, str] | None = None, port: int | None = None
    ) -> FunctionsFramework:
        """functions-framework serving the event handler; on ``functions_port`` it gets the trigger."""
        target, signature, env_vars = "handle_flow_run_event", "cloudevent", self.env(project, env)
        process = FunctionsFramework(target, ROOT / "main.py", signature, env_vars, self.log_dir / name, port=port)
        self.functions.append(process.start())
        return process


@contextlib.contextmanager
def bench_stack(name: str, project: str, stub_latency: float = 0.0) -> Iterator[BenchStack]:
    """The stack, logging to ``LOG_DIR/name`` (emptied first); the emulator delivers writes in
    ``project`` (only its own project's triggers fire) to ``functions_port`` once
    ``emulator.register_trigger`` is called."""
    log_dir = LOG_DIR / name
    shutil.rmtree(log_dir, ignore_errors=True)
    functions_port = free_port()
    emulator = FirestoreEmulator(project, log_dir, functions_emulator=f"127.0.0.1:{functions_port}")
    gcs = FakeGcs(log_dir)
    with GeminiStub(latency=stub_latency) as stub, contextlib.ExitStack() as cleanup:
        emulator.start()
        cleanup.callback(emulator.stop)
        gcs.start()
        cleanup.callback(gcs.stop)
        gcs.create_bucket(BUCKET)
        stack = BenchStack(log_dir, emulator, gcs, stub, functions_port)
        try:
            yield stack
        finally:
            for process in stack.functions:
                process.stop()
            for client in stack.clients:
                client.close()


def step_ids(count: int) -> list[str]:
    return [f"report-{i:02d}" for i in range(count)]


def read_runs(db: Any, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    refs = [db.collection("flow_runs").document(run_id) for run_id in run_ids]
    return {snap.id: snap.to_dict() or {} for snap in db.get_all(refs)}


def object_count(bucket: Any, prefix: str) -> int:
    return sum(1 for blob in bucket.client.list_blobs(bucket, prefix=prefix) if blob.name.endswith(".json"))
