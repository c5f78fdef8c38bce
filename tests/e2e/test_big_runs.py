"""End to end at the documented size limit (issue 15): one run of hundreds of READY steps through
the emulator's own trigger loop ends with every step SUCCEEDED, each by exactly one model call,
and a run past the limit is refused up front."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import step_data
from tests.stacks import Stack
from worker_llm_client.core.document_size import MAX_STEPS_PER_RUN

pytestmark = pytest.mark.e2e
SETTLED = ("SUCCEEDED", "FAILED")
VARS = {"week": "2026-W48", "notes": ["one incident"]}


def _steps(count: int) -> dict[str, Any]:
    """``count`` READY report steps, each with its own request (no two share an artifact)."""
    return {
        f"s{i:03d}": step_data(prompt_id="weekly_report", profile="flash-json", vars={**VARS, "team": f"team-{i}"})
        for i in range(count)
    }


@pytest.mark.parametrize("size", [300, MAX_STEPS_PER_RUN])
def test_a_big_run_ends_all_succeeded_each_step_exactly_once(stack: Stack, stub: Any, run_id: str, size: int) -> None:
    ref = stack.db.collection("flow_runs").document(run_id)
    ref.set({"status": "RUNNING", "steps": _steps(size)})
    final = stack.wait_for(run_id, lambda steps: all(s["status"] in SETTLED for s in steps.values()), timeout=300)
    assert {(s["status"], str(s.get("error"))[:300]) for s in final.values()} == {("SUCCEEDED", "None")}
    assert {(s["attempt"], s["outputs"]["llmCalls"], s["outputs"]["cached"]) for s in final.values()} == {(1, 1, False)}
    assert len({s["outputs"]["gcs_uri"] for s in final.values()}) == size and stub.calls() == size
    assert "wakeAt" not in (ref.get().to_dict() or {}).get("executor", {})  # nothing is left for the sweeper


def test_a_run_past_the_limit_is_refused_through_the_trigger_without_a_model_call(
    stack: Stack, stub: Any, run_id: str
) -> None:
    stack.db.collection("flow_runs").document(run_id).set({"status": "RUNNING", "steps": _steps(MAX_STEPS_PER_RUN + 1)})
    final = stack.wait_for(run_id, lambda steps: all(s["status"] in SETTLED for s in steps.values()), timeout=60)
    assert {(s["status"], s["error"]["code"]) for s in final.values()} == {("FAILED", "RUN_TOO_LARGE")}
    assert stub.calls() == 0
