from __future__ import annotations

from datetime import timedelta

import pytest

from tests.builders import T0
from worker_llm_client.core.retry_policy import after_failure, give_up, model_retry_wait, step_retry_delay
from worker_llm_client.errors import LlmRateLimited, LlmUnavailable, TemplateError


@pytest.mark.parametrize(
    ("retry", "hint", "jitter", "wait"),
    [(1, None, 0.0, 0.5), (1, None, 0.999999, 1.0), (2, None, 0.0, 1.0), (5, None, 0.0, 8.0), (6, None, 0.0, 16.0),
     (9, None, 0.0, 16.0), (9, None, 0.9999999, 32.0), (1, 1.5, 0.0, 1.5), (3, 1.5, 0.0, 2.0)],
)  # fmt: skip
def test_model_retry_wait(retry: int, hint: float | None, jitter: float, wait: float) -> None:
    assert model_retry_wait(retry, hint, jitter) == pytest.approx(wait, abs=1e-5)


@pytest.mark.parametrize(
    ("done", "wait", "left", "reason"),
    [(0, 1.0, 100.0, None), (5, 1.0, 100.0, "max_retries"), (1, 60.0, 30.0, "wait_exceeds_budget")],
)
def test_give_up(done: int, wait: float, left: float, reason: str | None) -> None:
    assert give_up(done, wait, left) == reason


def test_step_retry_delay_grows_and_respects_the_hint() -> None:
    assert [step_retry_delay(a) for a in (1, 2, 3, 10)] == [30.0, 60.0, 120.0, 900.0]
    assert step_retry_delay(1, hint=300.0) == 300.0


def test_after_failure() -> None:
    assert after_failure(TemplateError("x"), 1, 3, T0).failed
    wait = after_failure(LlmUnavailable("503"), 1, 3, T0)
    assert not wait.failed and wait.retry_at == T0 + timedelta(seconds=30)
    assert after_failure(LlmRateLimited("429"), 3, 3, T0).failed  # budget used: FAILED, retryable
    assert after_failure(LlmRateLimited("429"), 3, 3, T0).error["retryable"] is True


@pytest.mark.parametrize(
    ("reported", "kept"), [(None, 0), (12, 12), (-5, 0), (2**63, 0), (True, 0), ("7", 0), (2**53, 2**53)]
)
def test_a_providers_token_count_is_kept_only_when_firestore_can_store_it(reported: object, kept: int) -> None:
    from worker_llm_client.core.bounds import token_count

    assert token_count(reported) == kept


@pytest.mark.parametrize("hint", [float("inf"), 1e300, 10**400])
def test_an_unbounded_server_hint_never_overflows_the_retry_time(hint: float) -> None:
    from datetime import UTC, datetime

    from worker_llm_client.errors import LlmRateLimited

    outcome = after_failure(LlmRateLimited("429", retry_after=hint), 1, 3, datetime(2026, 1, 1, tzinfo=UTC))
    assert outcome.retry_at == datetime(2026, 1, 1, 1, tzinfo=UTC)  # clamped to an hour
    assert model_retry_wait(1, hint, 0.0) == 3600.0
