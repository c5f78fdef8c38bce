"""The runs as our own last finalize left them (adapters/known_runs.py)."""

from __future__ import annotations

from tests.builders import T0, later, make_run, step_data
from worker_llm_client.adapters.known_runs import KnownRuns


def test_a_kept_version_carries_the_writes_time_and_is_taken_once() -> None:
    known = KnownRuns()
    run = make_run({"a": step_data()})
    known.remember(run, later(1))
    kept = known.take(run.run_id)
    assert kept is not None and kept.update_time == later(1) and kept.steps is run.steps
    assert known.take(run.run_id) is None  # written on at most once


def test_nothing_is_kept_without_the_writes_time_and_the_least_recent_goes_first() -> None:
    known = KnownRuns(capacity=2)
    run = make_run({"a": step_data()})
    known.remember(run, None)
    assert known.take(run.run_id) is None
    for run_id in ("x", "y", "z"):
        known.remember(make_run({"a": step_data()}, run_id=run_id), T0)
    assert known.take("x") is None and known.take("y") is not None
    known.forget("z")
    assert known.take("z") is None
