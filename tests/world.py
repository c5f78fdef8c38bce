"""The use case over the in-memory fakes, with a test clock and an injected retry sleep."""

from __future__ import annotations

from typing import Any

from tests.builders import make_profile, make_prompt
from tests.fakes import FakeCatalog, FakeClock, FakeLlm, InMemoryArtifactStore, InMemoryRunStore
from worker_llm_client.call_model import ModelRetry
from worker_llm_client.execute_step import ExecutorPolicy, RunExecutor


class World:
    def __init__(
        self,
        llm: FakeLlm | None = None,
        catalog: FakeCatalog | None = None,
        runs: InMemoryRunStore | None = None,
        **policy: Any,
    ) -> None:
        self.clock = FakeClock()
        self.runs = runs or InMemoryRunStore(clock=self.clock.now)
        self.catalog = catalog or FakeCatalog(
            [make_prompt(), make_prompt("other", template="Other {{ team }}")],
            [make_profile(), make_profile("pro", model="gemini-2.5-pro")],
        )
        self.artifacts = InMemoryArtifactStore()
        self.llm = llm or FakeLlm()
        defaults: dict[str, Any] = {
            "worker_id": "w1",
            "lease_seconds": 600,
            "max_parallel_steps": 8,
            "allowed_llm_profiles": frozenset({"fast", "pro"}),
            "allowed_models": frozenset({"gemini-2.5-flash"}),
        }
        defaults.update(policy)
        tokens = iter(f"token-{i}" for i in range(1000))
        self.slept: list[float] = []
        retry = ModelRetry(sleep=self._sleep, monotonic=lambda: sum(self.slept), jitter=lambda: 0.0)
        self.executor = RunExecutor(
            self.runs,
            self.catalog,
            self.artifacts,
            self.llm,
            self.clock,
            ExecutorPolicy(**defaults),
            new_token=lambda: next(tokens),
            retry=retry,
        )

    def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    def run(self, steps: dict[str, dict[str, Any]], run_id: str = "r1", status: str = "RUNNING") -> Any:
        return self.runs.put(run_id, {"status": status, "steps": steps})

    def step(self, step_id: str, run_id: str = "r1") -> dict[str, Any]:
        return self.runs.step(run_id, step_id)
