"""Error -> what happens to the step next: FAILED now, or RETRY_WAIT until ``retryAt``.

Permanent errors fail at once. A retryable error waits for the next attempt with exponential
backoff (base 2, capped), never sooner than the server's own retry hint; once the attempt budget
is used it fails with ``retryable: true`` so an operator knows a re-run may succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

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
    backoff = min(STEP_RETRY_CAP_SECONDS, STEP_RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0))
    return float(max(backoff, hint or 0.0))


def error_record(error: StepError, attempt: int) -> dict[str, Any]:
    return {"code": error.code, "message": error.message, "retryable": error.retryable, "attempt": attempt}


def after_failure(error: StepError, attempt: int, max_attempts: int, now: datetime) -> StepOutcome:
    record = error_record(error, attempt)
    if not error.retryable or attempt >= max_attempts:
        return StepOutcome(record, None)
    hint = getattr(error, "retry_after", None)
    return StepOutcome(record, now + timedelta(seconds=step_retry_delay(attempt, hint)))
