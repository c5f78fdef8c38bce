"""One Firestore event -> a decision, with the cheapest possible path for events we caused.

Decoding and selection use the event payload only: when nothing in the snapshot is runnable (the
usual case, since our own writes re-trigger us) the handler returns without building a client or
making a network call. Only when there is work is the executor built (lazily, once per instance).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker_llm_client.adapters.cloudevent_decoding import decode_snapshot, run_id_from_attributes
from worker_llm_client.core.step_selection import runnable_steps
from worker_llm_client.core.trace_context import TraceParent, parse_traceparent
from worker_llm_client.errors import DeliveryInFlight, EventDecodeError
from worker_llm_client.observability import bind_event, get_logger

if TYPE_CHECKING:
    from worker_llm_client.execute_step import RunExecutor, StepResult


def utc_now() -> datetime:
    return datetime.now(UTC)


class Deliveries:
    """The event ids this instance is handling or has handled successfully in the last ``ttl`` s.

    Eventarc delivers at least once, sometimes many copies at once. A copy that arrives while the
    first is being handled waits for it (up to ``wait`` s) and answers as it does: acknowledged if
    it succeeded, an error (5xx, so Eventarc redelivers) if it failed or is still running. A copy
    of an event already handled successfully is acknowledged at once. Either way a copy costs no
    RPC; copies that reach other instances are still safe, since every claim is a precondition
    write.
    """

    def __init__(
        self,
        ttl: float = 600.0,
        capacity: int = 10_000,
        wait: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl, self.capacity, self.wait, self.clock = ttl, capacity, wait, clock
        self._handled: OrderedDict[str, float] = OrderedDict()  # event id -> when it expires
        self._running: dict[str, Future[None]] = {}
        self._lock = threading.Lock()

    def handle_once(self, event_id: str | None, work: Callable[[], list[StepResult]]) -> list[StepResult] | None:
        """``work()`` for the first delivery of ``event_id``; None for a copy (see the class)."""
        if not event_id:
            return work()
        with self._lock:
            self._forget_expired()
            if event_id in self._handled:
                return None
            first = self._running.get(event_id)
            if first is None:
                running = self._running[event_id] = Future()
        if first is not None:
            self._await(event_id, first)
            return None
        failure: BaseException | None = None
        try:
            return work()
        except BaseException as exc:
            failure = exc
            raise
        finally:  # settle the copies whatever happened
            with self._lock:
                self._running.pop(event_id, None)
                if failure is None:
                    self._handled[event_id] = self.clock() + self.ttl
            if failure is None:
                running.set_result(None)
            else:
                running.set_exception(failure)

    def _await(self, event_id: str, first: Future[None]) -> None:
        """Return when the first delivery succeeded; raise a fresh error (never the first's own
        object, which its thread is raising) when it failed or is still running after ``wait``."""
        try:
            first.result(timeout=self.wait)
        except FutureTimeout:
            raise DeliveryInFlight(
                f"event {event_id} is still being handled; answering 5xx to be redelivered"
            ) from None
        except BaseException as exc:
            raise DeliveryInFlight(f"the first delivery of event {event_id} failed: {type(exc).__name__}") from exc

    def _forget_expired(self) -> None:
        now = self.clock()
        while self._handled and (len(self._handled) > self.capacity or next(iter(self._handled.values())) <= now):
            self._handled.popitem(last=False)


def handle_firestore_event(
    attributes: Mapping[str, Any],
    data: Any,
    executor: Callable[[], RunExecutor],
    project: str = "",
    now: Callable[[], datetime] = utc_now,
    deliveries: Deliveries | None = None,
    trace: TraceParent | None = None,
) -> list[StepResult]:
    """The results of the steps executed (empty for ignored, no-op and repeated events). ``trace``:
    the HTTP request's (else the event's ``traceparent`` extension); a trace is started only when
    there is work."""
    run_id = run_id_from_attributes(attributes)
    trace = trace or parse_traceparent(attributes.get("traceparent"))
    bind_event(attributes.get("id"), run_id, trace, project)
    log = get_logger()
    log.info("event.received", eventType=attributes.get("type"), subject=attributes.get("subject"))
    if run_id is None:
        log.info("event.ignored", reason="not_a_flow_run_document")
        return []
    try:  # a step's fields are decoded as they are read: by the selection, or by the claim
        return _handle_run(run_id, attributes, data, executor, now, deliveries, trace)
    except EventDecodeError as exc:
        log.warning("event.ignored", reason="undecodable", detail=str(exc))
        return []


def _handle_run(
    run_id: str,
    attributes: Mapping[str, Any],
    data: Any,
    executor: Callable[[], RunExecutor],
    now: Callable[[], datetime],
    deliveries: Deliveries | None,
    trace: TraceParent | None,
) -> list[StepResult]:
    log = get_logger()
    snapshot = decode_snapshot(run_id, data)  # the run id is decoded once per event
    if snapshot is None:
        log.info("event.ignored", reason="document_deleted")
        return []
    if not runnable_steps(snapshot, now()):
        log.info("event.ignored", reason="nothing_runnable")
        return []

    def work() -> list[StepResult]:
        from worker_llm_client import tracing

        with tracing.root("handle_flow_run_event", trace, {"flow.run_id": snapshot.run_id}):
            return executor().handle(snapshot)

    if deliveries is None:
        return work()
    results = deliveries.handle_once(attributes.get("id"), work)
    if results is None:
        log.info("event.ignored", reason="duplicate_delivery")
        return []
    return results


DEFAULT_SWEEP_LIMIT = 200
MAX_SWEEP_LIMIT = 1000


def handle_sweep(
    query: Mapping[str, str], executor: Callable[[], RunExecutor], project: str = "", trace: TraceParent | None = None
) -> dict[str, int | None]:
    """Cloud Scheduler's periodic call: re-drive due runs, return what was done."""
    from worker_llm_client import tracing

    bind_event(None, None, trace, project)
    raw = query.get("limit", "")
    digits = raw.lstrip("0") if raw.isascii() and raw.isdecimal() else ""  # "" for 0 and for non-numbers
    if not digits:
        limit = DEFAULT_SWEEP_LIMIT
    elif len(digits) > len(str(MAX_SWEEP_LIMIT)):  # past the cap; and int() refuses more than 4,300 digits
        limit = MAX_SWEEP_LIMIT
    else:
        limit = min(int(digits), MAX_SWEEP_LIMIT)
    with tracing.root("sweep_flow_runs", trace, {"flow.sweep_limit": limit}):
        report = executor().sweep(limit)
    summary: dict[str, int | None] = {"runs": report.runs, "steps": report.steps, "repaired": report.repaired}
    summary |= {"failed": report.failed}
    summary |= {"deferred": report.deferred, "limit": limit}
    summary |= {"overdueRuns": report.overdue_runs, "oldestOverdueSeconds": report.oldest_overdue_seconds}
    get_logger().info("sweep.finished", **summary)
    return summary
