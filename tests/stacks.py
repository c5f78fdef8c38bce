"""What the test stacks share: names, the function's environment, and ``Stack`` (a function
process serving the emulator's trigger, with the run documents and the bucket it writes)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "test-artifacts"
IT_PROJECT = "it-project"
E2E_PROJECT = "e2e-project"
ALLOWED_PROFILES = (
    "flash-json,flash-json-vertex,pro-json,fast,pro,disabled,ghost-model,absent,short-timeout,"
    "gpt-json,claude-json,compatible-stub,flash-with-fallback,fallback-skips"
)
FALLBACK_PROFILE = "fallback-skips"  # written by tests/e2e/test_monitoring_fields.py: one fallback is unusable
ALLOWED_MODELS = "gemini-2.5-flash,gemini-2.5-pro,gpt-5-mini,claude-sonnet-4-6,local-model"
STUB_KEYS = {
    "OPENAI_API_KEY": "stub-" + "openai",  # pragma: allowlist secret
    "ANTHROPIC_API_KEY": "stub-" + "anthropic",  # pragma: allowlist secret
}
CONFIG_CACHE_SECONDS = 1
MODEL_RETRY_BUDGET_SECONDS = 5  # in-invocation retries stay within seconds in the test stacks


def function_env(
    project: str,
    emulator: Any,
    gcs: Any,
    stub: Any,
    *,
    traces: Any = None,
    openai: Any = None,
    anthropic: Any = None,
    **overrides: str,
) -> dict[str, str]:
    """The environment of a function process of the e2e and chaos stacks, for ``project``: the
    demo's, with the test profiles allowed and the test stacks' short cache and retry budget;
    spans exported to ``traces`` (an OtlpReceiver), else not exported; the OpenAI and Anthropic
    APIs at the ``openai`` and ``anthropic`` stubs when given."""
    from devstack.demo import function_env as stack_env

    endpoint = None if traces is None else traces.endpoint
    env = stack_env(project, emulator.host_port, gcs.url, stub.base_url, bucket=BUCKET, otlp_endpoint=endpoint)
    env |= {
        "ALLOWED_LLM_PROFILES": ALLOWED_PROFILES,
        "ALLOWED_MODELS": ALLOWED_MODELS,
        "CONFIG_CACHE_SECONDS": str(CONFIG_CACHE_SECONDS),
        "MODEL_RETRY_BUDGET_SECONDS": str(MODEL_RETRY_BUDGET_SECONDS),
        "VERTEX_BASE_URL": stub.base_url,  # provider vertex reaches the Gemini stub, never Vertex AI
    }
    if openai is not None:
        env |= {"OPENAI_BASE_URL": openai.base_url, "OPENAI_API_KEY": STUB_KEYS["OPENAI_API_KEY"]}
    if anthropic is not None:
        env |= {"ANTHROPIC_BASE_URL": anthropic.base_url, "ANTHROPIC_API_KEY": STUB_KEYS["ANTHROPIC_API_KEY"]}
    return env | overrides


@dataclass
class Stack:
    function: Any
    db: Any
    bucket: Any
    traces: Any = None  # the OtlpReceiver the function exports its spans to, if it does

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


class FunctionProcesses:
    """functions-framework processes of a test's own (own port, own log folder); stop_all at teardown."""

    def __init__(self, log_root: Path, env_for: Callable[..., dict[str, str]]) -> None:
        self.log_root, self.env_for = log_root, env_for
        self.started: list[Any] = []

    @classmethod
    def on(
        cls, log_root: Path, emulator: Any, gcs: Any, stub: Any, traces: Any = None, **stubs: Any
    ) -> FunctionProcesses:
        """Processes whose environment is ``function_env`` on the given emulator, GCS and stub (and
        trace receiver, and ``openai=``/``anthropic=`` stubs)."""

        def env_for(project: str, **overrides: str) -> dict[str, str]:
            return function_env(project, emulator, gcs, stub, traces=traces, **stubs, **overrides)

        return cls(log_root, env_for)

    def start(self, target: str, project: str, **overrides: str) -> Any:
        from devstack.services import FunctionsFramework

        signature = "http" if target == "sweep_flow_runs" else "cloudevent"
        log_dir = self.log_root / f"{len(self.started)}-{target}"
        process = FunctionsFramework(target, ROOT / "main.py", signature, self.env_for(project, **overrides), log_dir)
        self.started.append(process)
        return process.start()

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()
