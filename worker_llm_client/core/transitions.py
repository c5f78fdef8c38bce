"""Allowed status moves, as a table. Each function returns a patch, or ``None`` for "nothing to do".

The ``None`` is what makes events caused by our own writes cheap: a snapshot in which no step has
a claimable status produces no patch, so the handler returns without touching Firestore.

    READY ───────────────────────┐
    RETRY_WAIT (retryAt passed) ─┼─ claim ─▶ RUNNING ─ finalize ─▶ SUCCEEDED | FAILED | RETRY_WAIT
    RUNNING (lease expired) ─────┘   (attempt + 1; past maxAttempts ─▶ FAILED, retryable)

A lease that expires on the last attempt gets one *salvage* claim (same attempt number, marked
``claim.salvage``): the worker may have died after writing its report but before finalizing, and
the salvage finalizes with that report, or fails LEASE_EXPIRED without calling the model. A
salvage claim whose own lease expires fails LEASE_EXPIRED.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from worker_llm_client.errors import LeaseExpired
from worker_llm_client.models import DEFAULT_MAX_ATTEMPTS, FieldPathTuple, Patch, Step, StepStatus

if TYPE_CHECKING:  # on the no-op event path: execution_models is loaded only when there is work
    from worker_llm_client.execution_models import Claim


class Delete(Enum):
    """Marks a field to remove; the Firestore adapter maps it to ``DELETE_FIELD``."""

    FIELD = "DELETE_FIELD"


def timestamp_at(step: Step, *path: str) -> datetime | None:
    value: Any = step.data
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, datetime) else None


def retry_due(step: Step, now: datetime) -> bool:
    retry_at = timestamp_at(step, "retryAt")
    return retry_at is None or retry_at <= now


def lease_expired(step: Step, now: datetime) -> bool:
    expires = timestamp_at(step, "claim", "leaseExpiresAt")
    return expires is None or expires <= now


def _always(step: Step, now: datetime) -> bool:
    return True


CLAIMABLE: Mapping[str, Callable[[Step, datetime], bool]] = {
    StepStatus.READY: _always,
    StepStatus.RETRY_WAIT: retry_due,
    StepStatus.RUNNING: lease_expired,
}


def is_claimable(step: Step, now: datetime) -> bool:
    guard = CLAIMABLE.get(step.status)
    return guard is not None and guard(step, now)


def max_attempts(step: Step) -> int | None:
    """The step's attempt budget; ``None`` when ``maxAttempts`` is present but not a positive int."""
    value = step.data.get("maxAttempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def step_path(step_id: str, *field: str) -> FieldPathTuple:
    return ("steps", step_id, *field)


def _patch(step_id: str, values: Mapping[str, Any]) -> dict[FieldPathTuple, Any]:
    return {step_path(step_id, key): value for key, value in values.items()}


def claim_attempt(step: Step, now: datetime) -> tuple[int, bool] | None:
    """The attempt number a claim of ``step`` would run, and whether it is a salvage claim; None
    when the step is not claimable now or its budget is used (see ``exhausted_patch``)."""
    if not is_claimable(step, now):
        return None
    if not _budget_exhausted(step):
        return step.attempt + 1, False
    return (step.attempt, True) if _salvageable(step) else None


def claim_patch(step: Step, claim: Claim, now: datetime) -> Patch | None:
    """RUNNING with a fresh claim, or ``None`` when the step is not claimable now.

    A re-drive (RETRY_WAIT, expired lease) whose attempt would exceed the budget is not claimed,
    but for the salvage of an expired last attempt; ``exhausted_patch`` says what happens to it
    instead. READY is always claimable: it is the orchestrator asking for a run.
    """
    planned = claim_attempt(step, now)
    if planned is None:
        return None
    attempt, salvage = planned
    held = {
        "token": claim.token,
        "worker": claim.worker,
        "claimedAt": claim.claimed_at,
        "leaseExpiresAt": claim.lease_expires_at,
    }
    return _patch(
        step.step_id,
        {
            "status": StepStatus.RUNNING.value,
            "attempt": attempt,
            "claim": {**held, "salvage": True} if salvage else held,
            "startedAt": claim.claimed_at,
            "retryAt": Delete.FIELD,
            # a new attempt starts clean: no result or error of an earlier run may linger
            "outputs": Delete.FIELD,
            "finishedAt": Delete.FIELD,
            "error": Delete.FIELD,
        },
    )


def _budget_exhausted(step: Step) -> bool:
    if step.status == StepStatus.READY:
        return False
    budget = max_attempts(step) or DEFAULT_MAX_ATTEMPTS
    return step.attempt + 1 > budget


def _salvageable(step: Step) -> bool:
    return step.status == StepStatus.RUNNING and step.claim.get("salvage") is not True


def exhausted_patch(step: Step, now: datetime) -> Patch | None:
    """FAILED (retryable) for a claimable step that has used its whole attempt budget."""
    if not is_claimable(step, now) or not _budget_exhausted(step) or _salvageable(step):
        return None
    last = step.data.get("error")
    lease_lost = step.status == StepStatus.RUNNING
    error = _lease_error(step) if lease_lost or not isinstance(last, Mapping) or "code" not in last else dict(last)
    error.update(retryable=True, attempt=step.attempt)
    return _patch(step.step_id, {"status": StepStatus.FAILED.value, "finishedAt": now, "error": error})


def lease_expired_error(attempt: int) -> LeaseExpired:
    return LeaseExpired(f"the worker holding attempt {attempt} stopped before finishing")


def _lease_error(step: Step) -> dict[str, Any]:
    error = lease_expired_error(step.attempt)
    return {"code": error.code, "message": error.message}


def succeeded_patch(step_id: str, outputs: Mapping[str, Any], now: datetime) -> Patch:
    return _patch(
        step_id,
        {
            "status": StepStatus.SUCCEEDED.value,
            "finishedAt": now,
            "outputs": dict(outputs),
            "error": Delete.FIELD,
        },
    )


def failed_patch(step_id: str, error: Mapping[str, Any], now: datetime) -> Patch:
    return _patch(step_id, {"status": StepStatus.FAILED.value, "finishedAt": now, "error": dict(error)})


def retry_wait_patch(step_id: str, error: Mapping[str, Any], retry_at: datetime) -> Patch:
    return _patch(
        step_id,
        {"status": StepStatus.RETRY_WAIT.value, "retryAt": retry_at, "error": dict(error)},
    )
