from __future__ import annotations

import pytest

from tests.builders import T0, later, make_run, step_data
from worker_llm_client.core.transitions import Delete
from worker_llm_client.core.wake import WAKE_AT, apply_patch, next_wake, with_wake

LEASED = {"status": "RUNNING", "claim": {"token": "t", "leaseExpiresAt": later(600)}}


@pytest.mark.parametrize(
    ("steps", "run_status", "expected"),
    [
        ({"a": step_data()}, "RUNNING", None),
        ({"a": step_data(**LEASED)}, "RUNNING", later(600)),
        ({"a": step_data(status="RETRY_WAIT", retryAt=later(30)), "b": step_data(**LEASED)}, "RUNNING", later(30)),
        ({"a": step_data(status="RETRY_WAIT", retryAt=later(30))}, "CANCELLED", None),
        ({"a": step_data(status="SUCCEEDED"), "b": step_data(status="FAILED")}, "RUNNING", None),
        ({"a": step_data(type="HTTP_CALL", status="RUNNING", claim={"leaseExpiresAt": T0})}, "RUNNING", None),
    ],
)
def test_next_wake(steps: dict, run_status: str, expected: object) -> None:
    assert next_wake(make_run(steps, status=run_status)) == expected


def test_a_claim_patch_carries_the_new_leases_wake_time() -> None:
    run = make_run({"a": step_data(), "b": step_data(status="RETRY_WAIT", retryAt=later(900))})
    patch = {("steps", "a", "status"): "RUNNING", ("steps", "a", "claim"): {"token": "t", "leaseExpiresAt": later(600)}}
    assert with_wake(run, patch)[WAKE_AT] == later(600)


def test_a_finalize_that_leaves_nothing_waiting_deletes_the_wake_time() -> None:
    run = make_run({"a": step_data(**LEASED)})
    assert with_wake(run, {("steps", "a", "status"): "SUCCEEDED"})[WAKE_AT] is Delete.FIELD


def test_apply_patch_does_not_touch_the_snapshot() -> None:
    run = make_run({"a": step_data(retryAt=T0)})
    after = apply_patch(run, {("steps", "a", "retryAt"): Delete.FIELD, ("steps", "a", "status"): "RUNNING"})
    assert "retryAt" in run.steps["a"].data and run.steps["a"].status == "READY"
    assert "retryAt" not in after.steps["a"].data and after.steps["a"].status == "RUNNING"


def test_apply_patch_copies_only_the_steps_it_touches() -> None:
    run = make_run({"a": step_data(), "b": step_data(), "c": step_data()})
    after = apply_patch(run, {("steps", "a", "status"): "RUNNING", ("executor", "wakeAt"): T0})
    assert after.steps["b"] is run.steps["b"] and after.steps["a"] is not run.steps["a"]
    assert after.steps["a"].status == "RUNNING" and run.steps["a"].status == "READY"


def test_apply_patch_writes_whole_steps_the_run_status_and_deletions() -> None:
    run = make_run({"a": step_data(), "b": step_data(), "gone": step_data()})
    patch = {
        ("status",): "CANCELLED",
        ("steps", "new"): step_data(status="RETRY_WAIT", retryAt=later(5)),
        ("steps", "gone"): Delete.FIELD,
        ("steps", "b"): "not a map",
        ("steps", "b", "status"): "FAILED",  # after the whole step: written into what replaced it
        ("steps", "a", "claim", "token"): "t",  # into a map the step did not have yet
    }
    after = apply_patch(run, patch)
    assert after.status == "CANCELLED" and "gone" not in after.steps
    assert after.steps["new"].status == "RETRY_WAIT" and after.steps["new"].data["retryAt"] == later(5)
    assert dict(after.steps["b"].data) == {"status": "FAILED"} and after.steps["a"].data["claim"] == {"token": "t"}
    assert set(run.steps) == {"a", "b", "gone"} and run.status == "RUNNING"


def test_a_step_deleted_then_written_in_one_patch_starts_from_nothing() -> None:
    run = make_run({"a": step_data()})
    after = apply_patch(run, {("steps", "a"): Delete.FIELD, ("steps", "a", "status"): "READY"})
    assert dict(after.steps["a"].data) == {"status": "READY"}


def test_apply_patch_grows_a_size_bound_by_what_the_patch_may_add() -> None:
    from dataclasses import replace

    from worker_llm_client.core.document_size import patch_size_bound, value_size

    run = replace(make_run({"a": step_data()}), size_bound=1000)
    patch = {("steps", "a", "outputs"): {"gcs_uri": "gs://b/o"}, ("steps", "a", "error"): Delete.FIELD}
    assert patch_size_bound(patch) >= value_size(patch[("steps", "a", "outputs")]) + len("outputs")
    assert patch_size_bound({("steps", "a", "error"): Delete.FIELD}) == 0  # a deletion adds nothing
    assert apply_patch(run, patch).size_bound == 1000 + patch_size_bound(patch)
    assert apply_patch(make_run({"a": step_data()}), patch).size_bound is None  # nothing measured, nothing grown
