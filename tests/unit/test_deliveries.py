"""Copies of one event on one instance: handled once, answered like the first delivery."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fakes import Monotonic
from worker_llm_client.errors import DeliveryInFlight
from worker_llm_client.event_handler import Deliveries


class Work:
    def __init__(self, result: Any = ("report",), error: Exception | None = None) -> None:
        self.calls, self.result, self.error = 0, list(result), error
        self.started, self.release = threading.Event(), threading.Event()
        self.release.set()

    def __call__(self) -> Any:
        self.calls += 1
        self.started.set()
        self.release.wait(10)
        if self.error is not None:
            raise self.error
        return self.result


def test_a_copy_of_a_handled_event_is_acknowledged_without_work() -> None:
    deliveries, work = Deliveries(), Work()
    assert deliveries.handle_once("e1", work) == ["report"]
    assert deliveries.handle_once("e1", work) is None
    assert deliveries.handle_once("e2", work) == ["report"]
    assert work.calls == 2


def test_copies_arriving_during_the_first_wait_for_it_and_do_no_work() -> None:
    deliveries, work = Deliveries(), Work()
    work.release.clear()
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(deliveries.handle_once, "e1", work)
        assert work.started.wait(10)
        copies = [pool.submit(deliveries.handle_once, "e1", work) for _ in range(5)]
        assert not any(copy.done() for copy in copies)  # they wait for the first
        work.release.set()
        assert first.result() == ["report"]
        assert [copy.result() for copy in copies] == [None] * 5
    assert work.calls == 1


def test_when_the_first_fails_its_copies_fail_too_and_a_redelivery_works_again() -> None:
    deliveries, failing = Deliveries(), Work(error=RuntimeError("firestore down"))
    failing.release.clear()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(deliveries.handle_once, "e1", failing)
        assert failing.started.wait(10)
        copy = pool.submit(deliveries.handle_once, "e1", failing)
        failing.release.set()
        with pytest.raises(RuntimeError, match="firestore down"):
            first.result()
        with pytest.raises(DeliveryInFlight, match="first delivery of event e1 failed: RuntimeError") as info:
            copy.result()  # a 5xx too, so Eventarc redelivers; its own error, caused by the first's
        assert isinstance(info.value.__cause__, RuntimeError)
    assert failing.calls == 1
    work = Work()
    assert deliveries.handle_once("e1", work) == ["report"] and work.calls == 1


def test_handled_events_are_forgotten_after_the_ttl_and_beyond_the_capacity() -> None:
    clock, work = Monotonic(0.0), Work()
    deliveries = Deliveries(ttl=60, capacity=2, clock=clock)
    deliveries.handle_once("e1", work)
    clock.now = 59
    assert deliveries.handle_once("e1", work) is None
    clock.now = 61
    assert deliveries.handle_once("e1", work) == ["report"]  # expired: handled again
    deliveries.handle_once("e2", work)
    deliveries.handle_once("e3", work)
    assert deliveries.handle_once("e1", work) == ["report"]  # the oldest of three went over capacity
    assert work.calls == 5


def test_an_event_without_an_id_is_always_handled() -> None:
    deliveries, work = Deliveries(), Work()
    deliveries.handle_once(None, work)
    deliveries.handle_once("", work)
    assert work.calls == 2


def test_a_copy_waits_a_bounded_time_then_asks_to_be_redelivered() -> None:
    deliveries, work = Deliveries(wait=0.05), Work()
    work.release.clear()
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(deliveries.handle_once, "e1", work)
        assert work.started.wait(10)
        with pytest.raises(DeliveryInFlight, match="still being handled"):
            deliveries.handle_once("e1", work)
        work.release.set()
        assert first.result() == ["report"]
    assert deliveries.handle_once("e1", work) is None and work.calls == 1
