"""The sweeper finds all stranded work and drains it fairly (issue 10, item 6)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from tests.builders import T0, step_data
from tests.fakes import FakeLlm, InMemoryRunStore, reply
from tests.world import World
from worker_llm_client.core.wake import READY_WAKE_SECONDS
from worker_llm_client.execute_step import CLAIM_AHEAD
from worker_llm_client.execution_models import LlmRequest
from worker_llm_client.models import Written


def test_ready_steps_left_unclaimed_get_a_wake_time_and_the_sweeper_runs_them() -> None:
    world = World(max_parallel_steps=1, work_seconds=30.0)  # too short a window to claim b in a's finalize
    world.executor.handle(world.run({"a": step_data(), "b": step_data(), "c": step_data()}))
    # the events our writes cause are lost: b and c wait READY with a wake time
    assert [world.step(s)["status"] for s in "abc"] == ["SUCCEEDED", "READY", "READY"]
    assert world.runs.docs["r1"]["executor"]["wakeAt"] == T0 + timedelta(seconds=READY_WAKE_SECONDS)
    world.clock.advance(READY_WAKE_SECONDS)
    assert world.executor.sweep(limit=10).steps == 1
    world.clock.advance(READY_WAKE_SECONDS)
    assert world.executor.sweep(limit=10).steps == 1
    assert [world.step(s)["status"] for s in "abc"] == ["SUCCEEDED"] * 3
    assert "wakeAt" not in world.runs.docs["r1"]["executor"]


def test_a_dependent_step_made_runnable_by_a_finalize_gets_a_wake_time() -> None:
    world = World(work_seconds=30.0)  # too short a window to claim b in a's finalize
    world.executor.handle(world.run({"a": step_data(), "b": step_data(depends_on=["a"])}))
    assert world.step("b")["status"] == "READY"  # its event (our finalize's) is lost
    assert world.runs.docs["r1"]["executor"]["wakeAt"] == T0 + timedelta(seconds=READY_WAKE_SECONDS)


def test_the_orchestrators_doorbell_makes_the_sweeper_look_at_a_run_whose_event_was_lost() -> None:
    world = World()
    world.runs.put("r1", {"status": "RUNNING", "executor": {"wakeAt": T0}, "steps": {"s1": step_data()}})
    report = world.executor.sweep(limit=10)
    assert (report.runs, report.steps) == (1, 1) and world.step("s1")["status"] == "SUCCEEDED"


def test_a_run_that_raises_is_pushed_back_with_backoff_and_healthy_runs_are_swept() -> None:
    class Broken(InMemoryRunStore):
        def write_if_unchanged(self, run_id: str, update_time: Any, patch: Any) -> Written:
            if run_id == "broken" and any(path[-1] == "status" for path in patch):
                raise RuntimeError("unforeseen")
            return super().write_if_unchanged(run_id, update_time, patch)

    world = World()
    world.runs = world.executor.runs = Broken(clock=world.clock.now)
    for run_id in ("broken", "ok"):
        world.runs.put(run_id, {"status": "RUNNING", "executor": {"wakeAt": T0}, "steps": {"s1": step_data()}})
    report = world.executor.sweep(limit=10)
    assert (report.failed, report.steps) == (1, 1) and world.runs.step("ok", "s1")["status"] == "SUCCEEDED"
    executor = world.runs.docs["broken"]["executor"]
    assert executor == {"wakeAt": T0 + timedelta(seconds=60), "sweepFailures": 1}
    world.clock.advance(60)
    assert world.executor.sweep(limit=10).failed == 1
    executor = world.runs.docs["broken"]["executor"]
    assert executor == {"wakeAt": world.clock.now() + timedelta(seconds=120), "sweepFailures": 2}


def test_a_sweep_claims_nothing_with_less_than_the_minimum_of_its_window_left() -> None:
    world = World(max_parallel_steps=1, work_seconds=200.0)

    def slow(request: LlmRequest) -> Any:
        world.slept.append(150.0)  # the first run's model call takes 150 s of the 200 s window
        return reply()

    world.llm.respond = slow
    for run_id in ("r1", "r2"):
        world.runs.put(run_id, {"status": "RUNNING", "executor": {"wakeAt": T0}, "steps": {"s1": step_data()}})
    report = world.executor.sweep(limit=10)
    assert (report.runs, report.deferred) == (1, 1)
    assert world.runs.step("r2", "s1")["status"] == "READY" and len(world.llm.requests) == 1


def test_due_runs_are_swept_concurrently() -> None:
    together = threading.Barrier(3, timeout=10)

    def meet(request: LlmRequest) -> Any:
        together.wait()  # passes only when three runs' steps are in flight at once
        return reply()

    world = World(FakeLlm(meet))
    for run_id in ("r1", "r2", "r3"):
        world.runs.put(run_id, {"status": "RUNNING", "executor": {"wakeAt": T0}, "steps": {"s1": step_data()}})
    report = world.executor.sweep(limit=10)
    assert (report.runs, report.steps, report.failed) == (3, 3, 0)


def test_a_sweep_never_holds_more_steps_than_the_instances_slots() -> None:
    peak = [0]

    def count(request: LlmRequest) -> Any:
        held = sum(s["status"] == "RUNNING" for doc in list(world.runs.docs.values()) for s in doc["steps"].values())
        peak[0] = max(peak[0], held)
        threading.Event().wait(0.02)
        return reply()

    world = World(FakeLlm(count), max_parallel_steps=2)
    for run_id in ("r1", "r2", "r3"):
        steps = {f"s{i}": step_data() for i in range(3)}
        world.runs.put(run_id, {"status": "RUNNING", "executor": {"wakeAt": T0}, "steps": steps})
    report = world.executor.sweep(limit=10)
    assert 0 < peak[0] <= CLAIM_AHEAD * 2 and report.steps >= 2  # a step waits for at most one model slot turn


def test_a_sweep_that_finds_nothing_to_do_clears_the_failure_count() -> None:
    world = World()
    step = step_data(status="SUCCEEDED")
    world.runs.put("r1", {"status": "RUNNING", "executor": {"wakeAt": T0, "sweepFailures": 3}, "steps": {"s1": step}})
    assert world.executor.sweep(limit=10).repaired == 1
    assert world.runs.docs["r1"]["executor"] == {}
