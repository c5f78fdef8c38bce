"""The next claim a finalize's write carries (next_claim.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from structlog.testing import capture_logs

from tests.builders import T0, later, make_run, step_data
from worker_llm_client.core.claim_planning import ClaimPlan
from worker_llm_client.core.document_size import MAX_DOCUMENT_BYTES
from worker_llm_client.execution_models import Claim, ClaimedStep
from worker_llm_client.models import RunSnapshot
from worker_llm_client.next_claim import NextClaim


def _next(room: bool = True, accepted: list[Any] | None = None) -> NextClaim:
    def accept(run: RunSnapshot, plan: ClaimPlan) -> list[ClaimedStep]:
        steps = [ClaimedStep(run.run_id, c.step, c.attempt, c.claim, 0.0, c.salvage) for c in plan.claimed]
        (accepted if accepted is not None else []).extend(steps)
        return steps

    return NextClaim(lambda: T0, lambda now: Claim("next", "w1", now, later(600)), accept, lambda: room)


def _run(steps: dict[str, Any], size_bound: int | None = 1000, status: str = "RUNNING") -> RunSnapshot:
    return replace(make_run(steps, status=status), size_bound=size_bound)


def test_one_runnable_step_is_planned_and_handed_over_once_its_write_landed() -> None:
    follow = _next()
    run = _run({"a": step_data(status="SUCCEEDED"), "b": step_data(depends_on=["a"]), "c": step_data()})
    patch = follow.plan(run)
    assert patch[("steps", "b", "status")] == "RUNNING" and not any(path[1] == "c" for path in patch)
    assert follow.claimed() == []  # nothing landed yet
    follow.landed(run)
    [(handed_run, step)] = follow.claimed()
    assert handed_run is run and step.step.step_id == "b" and step.claim.token == "next"


def test_only_the_last_plan_counts_and_nothing_is_planned_without_room() -> None:
    run = _run({"a": step_data()})
    follow = _next()
    follow.plan(_run({"a": step_data(status="CANCELLED")}))
    follow.plan(run)
    follow.landed(run)
    assert [s.step.step_id for _, s in follow.claimed()] == ["a"]
    full = _next(room=False)
    assert full.plan(run) == {}
    full.landed(run)
    assert full.claimed() == []


def test_a_plan_that_raises_adds_nothing_and_is_logged_without_its_content() -> None:
    class Broken(dict):  # a run whose steps cannot even be listed
        def items(self) -> Any:
            raise RuntimeError("SECRET-step-content")

    run = RunSnapshot("r1", "RUNNING", Broken(), T0, size_bound=10)
    follow = _next()
    with capture_logs() as logs:
        assert follow.plan(run) == {}
    [line] = logs
    assert line["event"] == "step.internal_error" and line["where"] == "planning the next claim"
    follow.landed(run)
    assert follow.claimed() == []


def test_nothing_is_planned_when_the_size_bound_does_not_prove_room_for_the_result() -> None:
    """The run planned on is a read with patches applied: its document is never walked, so a run
    whose bound leaves no room is left to the write's event (it decides on the whole document)."""
    for size_bound in (None, MAX_DOCUMENT_BYTES):
        follow = _next()
        assert follow.plan(_run({"a": step_data()}, size_bound=size_bound)) == {}
