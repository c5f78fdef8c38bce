from __future__ import annotations

import itertools

import pytest

from tests.builders import T0, later, make_run, step_data
from worker_llm_client.core.claim_planning import plan_claims
from worker_llm_client.core.step_selection import cycle_members, cycle_through, dependencies_met, runnable_steps
from worker_llm_client.core.wake import next_wake
from worker_llm_client.execution_models import Claim

RUNNING_LEASED = {"status": "RUNNING", "attempt": 1, "claim": {"token": "x", "leaseExpiresAt": later(60)}}
RUNNING_EXPIRED = {"status": "RUNNING", "attempt": 1, "claim": {"token": "x", "leaseExpiresAt": later(-1)}}


@pytest.mark.parametrize(
    ("steps", "run_status", "expected"),
    [
        ({"a": step_data()}, "RUNNING", ["a"]),
        ({"a": step_data(status="PENDING")}, "RUNNING", []),
        ({"a": step_data(type="HTTP_CALL")}, "RUNNING", []),
        ({"a": step_data()}, "CANCELLED", []),
        ({"a": step_data(status="SUCCEEDED"), "b": step_data(depends_on=["a"])}, "RUNNING", ["b"]),
        ({"a": step_data(**RUNNING_LEASED), "b": step_data(depends_on=["a"])}, "RUNNING", []),
        ({"a": step_data(status="FAILED"), "b": step_data(depends_on=["a"])}, "RUNNING", []),
        ({"a": step_data(), "b": step_data(), "c": step_data(depends_on=["a", "b"])}, "RUNNING", ["a", "b"]),
        (
            {
                "a": step_data(status="SUCCEEDED"),
                "c": step_data(depends_on=["a", "b"]),
                "b": step_data(status="SUCCEEDED"),
            },
            "RUNNING",
            ["c"],
        ),
        ({"a": step_data(**RUNNING_LEASED)}, "RUNNING", []),
        ({"a": step_data(**RUNNING_EXPIRED)}, "RUNNING", ["a"]),
        ({"a": step_data(status="RETRY_WAIT", retryAt=later(10))}, "RUNNING", []),
        ({"a": step_data(status="RETRY_WAIT", retryAt=later(-10))}, "RUNNING", ["a"]),
        ({"a": step_data(status="SUCCEEDED")}, "RUNNING", []),
        ({"a": step_data(status="CANCELLED")}, "RUNNING", []),
        # malformed dependencies are selected so they fail with INVALID_STEP instead of hanging
        ({"a": step_data(depends_on=["nope"])}, "RUNNING", ["a"]),
        ({"a": step_data(dependsOn="b")}, "RUNNING", ["a"]),
        ({"weekly-report.v2": step_data()}, "RUNNING", ["weekly-report.v2"]),
        # a dependsOn cycle never resolves: its members are selected so they fail with INVALID_STEP
        ({"a": step_data(depends_on=["a"])}, "RUNNING", ["a"]),
        ({"a": step_data(depends_on=["b"]), "b": step_data(depends_on=["a"])}, "RUNNING", ["a", "b"]),
        (
            {"a": step_data(depends_on=["c"]), "b": step_data(depends_on=["a"]), "c": step_data(depends_on=["b"])},
            "RUNNING",
            ["a", "b", "c"],
        ),
        (  # a PENDING member still closes the cycle; only READY members are selected
            {"a": step_data(depends_on=["b"]), "b": step_data(status="PENDING", depends_on=["a"])},
            "RUNNING",
            ["a"],
        ),
        (  # a step downstream of a cycle waits for it, as for any dependency that fails
            {"a": step_data(depends_on=["b"]), "b": step_data(depends_on=["a"]), "c": step_data(depends_on=["b"])},
            "RUNNING",
            ["a", "b"],
        ),
        (
            {
                "a": step_data(depends_on=["b"]),
                "b": step_data(status="FAILED", depends_on=["a"]),
                "c": step_data(depends_on=["b"]),
            },
            "RUNNING",
            ["a"],
        ),
        # a cycle through a SUCCEEDED step is no cycle: the dependency is met
        ({"a": step_data(depends_on=["b"]), "b": step_data(status="SUCCEEDED", depends_on=["a"])}, "RUNNING", ["a"]),
        # a chain is no cycle
        ({"a": step_data(depends_on=["x"]), "b": step_data(depends_on=["a"]), "x": step_data()}, "RUNNING", ["x"]),
    ],
)
def test_runnable_steps(steps: dict, run_status: str, expected: list[str]) -> None:
    run = make_run(steps, status=run_status)
    assert [s.step_id for s in runnable_steps(run, T0)] == expected


def _claims() -> itertools.count[int]:
    return itertools.count(1)


def test_plan_claims_moves_each_runnable_step_to_running_in_one_patch() -> None:
    counter = _claims()
    run = make_run({"a": step_data(), "b": step_data(), "c": step_data(status="PENDING")})
    plan = plan_claims(run, T0, 8, lambda: Claim(f"tok{next(counter)}", "w", T0, later(600)))
    assert [c.step.step_id for c in plan.claimed] == ["a", "b"]
    assert plan.patch[("steps", "a", "status")] == "RUNNING"
    assert plan.patch[("steps", "a", "attempt")] == 1
    assert plan.patch[("steps", "a", "claim")]["token"] == "tok1"
    assert plan.patch[("steps", "b", "claim")]["leaseExpiresAt"] == later(600)
    assert plan.patch[("steps", "b", "startedAt")] == T0
    assert not any(path[1] == "c" for path in plan.patch)


def test_plan_claims_respects_the_parallel_limit() -> None:
    run = make_run({f"s{i}": step_data() for i in range(5)})
    plan = plan_claims(run, T0, 2, lambda: Claim("t", "w", T0, later(600)))
    assert [c.step.step_id for c in plan.claimed] == ["s0", "s1"]


def test_plan_fails_a_redrive_past_its_budget_with_the_last_error() -> None:
    last = {"code": "LLM_UNAVAILABLE", "message": "503", "retryable": True, "attempt": 3}
    run = make_run({"a": step_data(status="RETRY_WAIT", attempt=3, retryAt=later(-1), error=last)})
    plan = plan_claims(run, T0, 8, lambda: Claim("t", "w", T0, later(600)))
    assert plan.claimed == []
    assert [s.step_id for s in plan.exhausted] == ["a"]
    assert plan.patch[("steps", "a", "status")] == "FAILED"
    assert plan.patch[("steps", "a", "error")] == {**last, "retryable": True, "attempt": 3}


def test_plan_fails_an_expired_salvage_lease_as_lease_expired() -> None:
    expired = {**RUNNING_EXPIRED, "claim": {**RUNNING_EXPIRED["claim"], "salvage": True}}
    run = make_run({"a": step_data(maxAttempts=1, **expired)})
    plan = plan_claims(run, T0, 8, lambda: Claim("t", "w", T0, later(600)))
    assert plan.patch[("steps", "a", "error")]["code"] == "LEASE_EXPIRED"
    assert plan.patch[("steps", "a", "error")]["retryable"] is True


def test_plan_is_empty_for_our_own_writes() -> None:
    run = make_run({"a": step_data(**RUNNING_LEASED), "b": step_data(status="SUCCEEDED")})
    assert plan_claims(run, T0, 8, lambda: Claim("t", "w", T0, later(600))).empty


def test_a_dead_salvage_worker_fails_as_lease_expired_not_with_an_older_error() -> None:
    older = {"code": "LLM_RATE_LIMITED", "message": "429", "retryable": True, "attempt": 2}
    claim = {"token": "x", "leaseExpiresAt": later(-1), "salvage": True}
    run = make_run({"a": step_data(status="RUNNING", attempt=3, error=older, claim=claim)})
    plan = plan_claims(run, T0, 8, lambda: Claim("t", "w", T0, later(600)))
    assert plan.patch[("steps", "a", "error")]["code"] == "LEASE_EXPIRED"
    assert plan.patch[("steps", "a", "error")]["attempt"] == 3


@pytest.mark.parametrize("length", [500, 5000])
def test_a_long_chain_runs_one_step_at_a_time(length: int) -> None:
    ids = [f"s{i:05d}" for i in range(length)]
    run = make_run({sid: step_data(depends_on=[ids[i - 1]] if i else None) for i, sid in enumerate(ids)})
    assert [s.step_id for s in runnable_steps(run, T0)] == [ids[0]]
    assert cycle_members(run.steps) == frozenset()
    assert next_wake(run, T0) == later(60)  # every READY step asked dependencies_met: still linear


def test_a_long_chain_closed_into_a_cycle_is_all_selected() -> None:
    ids = [f"s{i:05d}" for i in range(5000)]
    run = make_run({sid: step_data(depends_on=[ids[i - 1]]) for i, sid in enumerate(ids)})  # ids[0] <- ids[-1]
    assert len(runnable_steps(run, T0)) == 5000


def test_cycle_members_are_computed_once_per_snapshot() -> None:
    run = make_run(
        {"a": step_data(depends_on=["b"]), "b": step_data(depends_on=["a"]), "c": step_data(depends_on=["a"])}
    )
    first = cycle_members(run.steps)
    assert first == {"a", "b"} and cycle_members(run.steps) is first
    assert all(dependencies_met(run.steps[s], run.steps) for s in ("a", "b"))
    assert not dependencies_met(run.steps["c"], run.steps)
    other = make_run({"a": step_data(depends_on=["b"]), "b": step_data(status="SUCCEEDED", depends_on=["a"])})
    assert cycle_members(other.steps) == frozenset()


@pytest.mark.parametrize(
    ("depends_on", "cycle"),
    [
        ({"a": ["c", "b"], "b": ["a"], "c": ["d"], "d": ["a"]}, ("a", "b", "a")),  # the shortest, not the first
        ({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": ["a"]}, ("a", "b", "d", "a")),  # d reached twice
        ({"a": ["b"], "b": ["c"], "c": ["b"]}, ()),  # a leads into a cycle it is not on
        ({"a": [], "b": ["a"]}, ()),
    ],
)
def test_cycle_through_names_a_shortest_cycle_back_to_the_step(
    depends_on: dict[str, list[str]], cycle: tuple[str, ...]
) -> None:
    run = make_run({sid: step_data(depends_on=deps) for sid, deps in depends_on.items()})
    assert cycle_through("a", run.steps) == cycle
