"""Error -> what happens to the step next: FAILED now, or RETRY_WAIT until ``retryAt``.

Permanent errors fail at once. A retryable error waits for the next attempt with exponential
backoff (base 2, capped), never sooner than the server's own retry hint; once the attempt budget
is used it fails with ``retryable: true`` so an operator knows a re-run may succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from worker_llm_client.core.bounds import MAX_ERROR_MESSAGE, clip, retry_hint_seconds
from worker_llm_client.errors import StepError

STEP_RETRY_BASE_SECONDS = 30.0
STEP_RETRY_CAP_SECONDS = 900.0


@dataclass(frozen=True)
class StepOutcome:
    error: dict[str, Any]
    retry_at: datetime | None  # None: FAILED

    @property
    def failed(self) -> bool:
        return self.retry_at is None


def step_retry_delay(attempt: int, hint: float | None = None) -> float:
    """Seconds until the next attempt; a server's hint is clamped (``bounds.retry_hint_seconds``)."""
    backoff = min(STEP_RETRY_CAP_SECONDS, STEP_RETRY_BASE_SECONDS * 2 ** min(max(attempt - 1, 0), 16))
    return float(max(backoff, retry_hint_seconds(hint) or 0.0))


def error_record(error: StepError, attempt: int) -> dict[str, Any]:
    message = clip(error.message, MAX_ERROR_MESSAGE)
    return {"code": error.code, "message": message, "retryable": error.retryable, "attempt": attempt}


def after_failure(error: StepError, attempt: int, max_attempts: int, now: datetime) -> StepOutcome:
    record = error_record(error, attempt)
    if not error.retryable or attempt >= max_attempts:
        return StepOutcome(record, None)
    hint = getattr(error, "retry_after", None)
    return StepOutcome(record, now + timedelta(seconds=step_retry_delay(attempt, hint)))


# -- retrying a model call within one invocation -------------------------------------------------

MODEL_RETRY_BASE_SECONDS = 1.0
MODEL_RETRY_CAP_SECONDS = 32.0
MODEL_MAX_RETRIES = 5


def model_retry_wait(retry_number: int, hint: float | None, jitter: float) -> float:
    """Seconds before retry ``retry_number`` (1-based): exponential, base 2, capped at 32 s, with
    "equal jitter" (``jitter`` in [0, 1) keeps it between half and all of the backoff), and never
    shorter than the server's hint."""
    backoff = min(MODEL_RETRY_CAP_SECONDS, MODEL_RETRY_BASE_SECONDS * 2 ** min(retry_number - 1, 16))
    return float(max(backoff * (0.5 + jitter / 2), retry_hint_seconds(hint) or 0.0))


def give_up(retries_done: int, next_wait: float, time_left: float) -> str | None:
    """Why not to retry again (a reason for the log), or None to go on."""
    if retries_done >= MODEL_MAX_RETRIES:
        return "max_retries"
    if next_wait > time_left:
        return "wait_exceeds_budget"
    return None
