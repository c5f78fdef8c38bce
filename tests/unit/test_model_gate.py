from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from worker_llm_client.core.bounds import MAX_RETRY_HINT_SECONDS
from worker_llm_client.errors import LlmRateLimited
from worker_llm_client.model_gate import DEFAULT_COOLDOWN_SECONDS, ModelGate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_at_most_capacity_calls_are_in_flight() -> None:
    gate = ModelGate(capacity=2)
    peak, inside, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def call() -> None:
        with gate.admit("m", max_wait=10):
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            release.wait(0.05)
            with lock:
                inside[0] -= 1

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda _: call(), range(6)))
    assert peak[0] == 2
    assert (gate.submitted, gate.inflight, gate.completed) == (6, 0, 6)


def test_other_calls_wait_out_a_models_cooldown() -> None:
    clock = Clock()
    gate = ModelGate(capacity=4, sleep=clock.sleep, monotonic=clock.monotonic)
    gate.cool_down("m", 1.5)
    with gate.admit("m", max_wait=10) as stats:
        assert stats.inflight == 1
    with gate.admit("other", max_wait=10):
        pass
    assert clock.slept == [1.5]  # only the cooled model waited


def test_a_cooldown_longer_than_the_wait_allowed_gives_up_at_once() -> None:
    clock = Clock()
    gate = ModelGate(capacity=4, sleep=clock.sleep, monotonic=clock.monotonic)
    gate.cool_down("m", 30)
    with pytest.raises(LlmRateLimited) as info, gate.admit("m", max_wait=5):
        pass
    assert info.value.retry_after == 30 and clock.slept == [] and gate.completed == 1


def test_waiting_for_a_slot_gives_up_when_the_time_allowed_runs_out() -> None:
    from worker_llm_client.errors import LlmUnavailable

    gate = ModelGate(capacity=1)
    with (
        gate.admit("m", max_wait=10),
        pytest.raises(LlmUnavailable, match="slot"),
        gate.admit("m", max_wait=0.05),
    ):
        pass
    assert (gate.inflight, gate.completed) == (0, 2)


@pytest.mark.parametrize(
    ("hint", "left"),
    [
        (float("inf"), MAX_RETRY_HINT_SECONDS),
        (1e300, MAX_RETRY_HINT_SECONDS),
        (float("nan"), DEFAULT_COOLDOWN_SECONDS),
        (None, DEFAULT_COOLDOWN_SECONDS),
        (-5.0, 0.0),
        (2.5, 2.5),
    ],
)
def test_a_cooldown_is_bounded_whatever_the_hint(hint: float | None, left: float) -> None:
    clock = Clock()
    gate = ModelGate(capacity=1, sleep=clock.sleep, monotonic=clock.monotonic)
    gate.cool_down("m", hint)
    assert gate.cooldown_left("m") == left


def test_an_infinite_hint_does_not_wedge_the_model_for_good() -> None:
    clock = Clock()
    gate = ModelGate(capacity=1, sleep=clock.sleep, monotonic=clock.monotonic)
    gate.cool_down("m", float("inf"))
    clock.now += MAX_RETRY_HINT_SECONDS
    with gate.admit("m", max_wait=0) as stats:
        assert stats.inflight == 1
    assert clock.slept == []
