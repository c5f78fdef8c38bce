from __future__ import annotations

import pytest

from tests.builders import T0, later, make_step
from worker_llm_client.core.transitions import (
    Delete,
    claim_patch,
    failed_patch,
    max_attempts,
    retry_wait_patch,
    succeeded_patch,
)
from worker_llm_client.execution_models import Claim

CLAIM = Claim("tok", "worker-1", T0, later(600))


@pytest.mark.parametrize(
    ("kwargs", "claimable"),
    [
        ({"status": "READY"}, True),
        ({"status": "PENDING"}, False),
        ({"status": "SUCCEEDED"}, False),
        ({"status": "FAILED"}, False),
        ({"status": "CANCELLED"}, False),
        ({"status": "RETRY_WAIT", "retryAt": later(1)}, False),
        ({"status": "RETRY_WAIT", "retryAt": T0}, True),
        ({"status": "RUNNING", "claim": {"leaseExpiresAt": later(1)}}, False),
        ({"status": "RUNNING", "claim": {"leaseExpiresAt": later(-1)}}, True),
        ({"status": "RUNNING", "attempt": 3, "claim": {"leaseExpiresAt": later(-1)}}, True),  # salvage of the last
        ({"status": "RUNNING", "attempt": 3, "claim": {"leaseExpiresAt": later(-1), "salvage": True}}, False),
        ({"status": "READY", "attempt": 7}, True),  # READY is the orchestrator asking again
    ],
)
def test_claim_table(kwargs: dict, claimable: bool) -> None:
    assert (claim_patch(make_step(**kwargs), CLAIM, T0) is not None) is claimable


def test_claim_increments_attempt_and_clears_retry_at() -> None:
    patch = claim_patch(make_step(status="RETRY_WAIT", attempt=1, retryAt=T0), CLAIM, T0)
    assert patch is not None
    assert patch[("steps", "s1", "attempt")] == 2
    assert patch[("steps", "s1", "retryAt")] is Delete.FIELD
    assert patch[("steps", "s1", "claim")] == {
        "token": "tok",
        "worker": "worker-1",
        "claimedAt": T0,
        "leaseExpiresAt": later(600),
    }


@pytest.mark.parametrize(("value", "expected"), [(None, 3), (5, 5), (0, None), ("3", None), (True, None)])
def test_max_attempts(value: object, expected: int | None) -> None:
    step = make_step() if value is None else make_step(maxAttempts=value)
    assert max_attempts(step) == expected


def test_final_patches() -> None:
    assert succeeded_patch("s", {"gcs_uri": "gs://b/o"}, T0)[("steps", "s", "error")] is Delete.FIELD
    assert failed_patch("s", {"code": "X"}, T0)[("steps", "s", "status")] == "FAILED"
    assert retry_wait_patch("s", {"code": "X"}, later(30))[("steps", "s", "retryAt")] == later(30)


def test_a_new_attempt_starts_without_the_last_runs_result_or_error() -> None:
    previous = {"outputs": {"gcs_uri": "gs://b/old"}, "finishedAt": T0, "error": {"code": "LLM_TIMEOUT"}}
    patch = claim_patch(make_step(status="READY", **previous), CLAIM, T0)
    assert patch is not None
    assert all(patch[("steps", "s1", key)] is Delete.FIELD for key in ("outputs", "finishedAt", "error"))
