"""The runs as our own last finalize left them (adapters/known_runs.py)."""

from __future__ import annotations

from dataclasses import replace

from tests.builders import T0, later, make_run, step_data
from worker_llm_client.adapters.known_runs import MAX_KEPT_BYTES, KnownRuns, growth_bound
from worker_llm_client.core.document_size import value_size
from worker_llm_client.core.transitions import Delete


def test_a_kept_version_carries_the_writes_time_and_a_bound_grown_by_the_patch() -> None:
    known = KnownRuns()
    run = replace(make_run({"a": step_data()}), size_bound=1000)
    patch = {("steps", "a", "outputs"): {"gcs_uri": "gs://b/o"}, ("steps", "a", "error"): Delete.FIELD}
    known.remember(run, patch, later(1))
    kept = known.take(run.run_id)
    assert kept is not None and kept.update_time == later(1) and kept.steps is run.steps
    assert kept.size_bound == 1000 + growth_bound(patch) and growth_bound(patch) >= value_size(
        patch[("steps", "a", "outputs")]
    )
    assert known.take(run.run_id) is None  # written on at most once


def test_nothing_is_kept_without_a_bound_a_time_or_room_and_the_oldest_goes_first() -> None:
    known = KnownRuns(capacity=2)
    run = make_run({"a": step_data()})
    known.remember(run, {}, T0)  # no size bound measured
    known.remember(replace(run, size_bound=10), {}, None)  # the write's time unknown
    known.remember(replace(run, size_bound=MAX_KEPT_BYTES + 1), {}, T0)  # too big to plan claims on
    assert known.take(run.run_id) is None
    for run_id in ("x", "y", "z"):
        known.remember(replace(run, run_id=run_id, size_bound=10), {}, T0)
    assert known.take("x") is None and known.take("y") is not None
    known.forget("z")
    assert known.take("z") is None
