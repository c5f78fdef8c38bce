"""``handle_sweep``'s reading of the ``limit`` query parameter."""

from __future__ import annotations

import pytest

from worker_llm_client.event_handler import DEFAULT_SWEEP_LIMIT, MAX_SWEEP_LIMIT, handle_sweep
from worker_llm_client.execute_step import SweepSummary


class Sweeper:
    def __init__(self) -> None:
        self.asked: list[int] = []

    def sweep(self, limit: int) -> SweepSummary:
        self.asked.append(limit)
        return SweepSummary(runs=1)


@pytest.mark.parametrize(
    ("raw", "limit"),
    [
        (None, DEFAULT_SWEEP_LIMIT),
        ("", DEFAULT_SWEEP_LIMIT),
        ("5", 5),
        ("0005", 5),
        (str(MAX_SWEEP_LIMIT), MAX_SWEEP_LIMIT),
        (str(MAX_SWEEP_LIMIT + 1), MAX_SWEEP_LIMIT),
        ("0", DEFAULT_SWEEP_LIMIT),
        ("-3", DEFAULT_SWEEP_LIMIT),
        ("x", DEFAULT_SWEEP_LIMIT),
        ("²", DEFAULT_SWEEP_LIMIT),
        ("٣", DEFAULT_SWEEP_LIMIT),  # decimal, but not ASCII
        pytest.param("9" * 4_301, MAX_SWEEP_LIMIT, id="past-ints-4300-digit-limit"),
        pytest.param("9" * 1_000_000, MAX_SWEEP_LIMIT, id="a-million-digits"),
        pytest.param("0" * 5_000 + "7", 7, id="leading-zeros-past-the-limit"),
        pytest.param("0" * 5_000, DEFAULT_SWEEP_LIMIT, id="only-zeros-past-the-limit"),
    ],
)
def test_the_limit_is_read_safely_defaulted_and_capped(raw: str | None, limit: int) -> None:
    sweeper = Sweeper()
    query = {} if raw is None else {"limit": raw}
    summary = handle_sweep(query, lambda: sweeper)  # type: ignore[arg-type,return-value]
    assert sweeper.asked == [limit]
    assert summary == {
        "runs": 1,
        "steps": 0,
        "repaired": 0,
        "failed": 0,
        "deferred": 0,
        "limit": limit,
        "overdueRuns": None,
        "oldestOverdueSeconds": None,
    }
