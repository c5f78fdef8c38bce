"""The sweeper: re-drive runs whose ``executor.wakeAt`` has come (retries due, leases expired,
READY steps nobody claimed, an orchestrator's doorbell).

Due runs are worked on concurrently, taking the instance's step slots (``step_slots.py``), at most
``MAX_PARALLEL_STEPS`` per run, before each claim, so one slow run does not hold up the others. A
run is claimed only while at least ``MIN_SWEEP_WORK_SECONDS`` of the sweep's window is left (a step
claimed with no time left would only burn an attempt); the rest stay due for the next sweep. A run
that raises is logged and its ``wakeAt`` pushed back with exponential backoff
(``executor.sweepFailures`` counts the sweeps in a row that raised), so a broken run cannot starve
healthy ones at the head of the query. Safe to run concurrently and repeatedly: every write is a
precondition write.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from worker_llm_client.core.step_selection import runnable_steps
from worker_llm_client.core.transitions import Delete
from worker_llm_client.core.wake import SWEEP_FAILURES, WAKE_AT, next_wake, wake_field
from worker_llm_client.errors import RunStoreUnavailable
from worker_llm_client.models import Patch, RunSnapshot, Written
from worker_llm_client.observability import bind_run, get_logger

if TYPE_CHECKING:
    from worker_llm_client.execute_step import RunExecutor, SweepSummary

MIN_SWEEP_WORK_SECONDS = 60.0
SWEEP_BACKOFF_BASE_SECONDS = 60.0
SWEEP_BACKOFF_CAP_SECONDS = 3600.0


class Sweeper:
    def __init__(self, executor: RunExecutor) -> None:
        self.executor = executor
        self.runs, self.clock, self.retry = executor.runs, executor.clock, executor.retry
        self.log = get_logger()
        self._lock = threading.Lock()

    def sweep(self, limit: int) -> SweepSummary:
        from worker_llm_client.execute_step import SweepSummary

        report = SweepSummary()
        window = self.executor.policy.work_seconds
        deadline = self.retry.monotonic() + window  # one window for the whole sweep
        min_work = min(MIN_SWEEP_WORK_SECONDS, window / 2)
        started = self.clock.now()
        due = self.runs.due_runs(started, limit)
        workers = max(1, min(self.executor.policy.max_parallel_steps, len(due)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sweep") as pool:
            futures = [
                pool.submit(contextvars.copy_context().run, self._sweep_run, run_id, deadline, min_work, report)
                for run_id in due
            ]
            for future in futures:
                future.result()
        self._backlog(report, started)
        return report

    def _backlog(self, report: SweepSummary, started: datetime) -> None:
        """What is still due from before this sweep began: runs it could not reach (beyond its
        limit, deferred, pushed back) are the backlog an operator alerts on."""
        try:
            count, oldest = self.runs.overdue(started)
        except RunStoreUnavailable as error:  # the sweep's work stands; only the figure is missing
            self.log.warning("sweep.run_failed", reason="backlog_not_counted", detail=str(error))
            return
        waited = 0 if oldest is None else int((self.clock.now() - oldest).total_seconds())
        report.overdue_runs, report.oldest_overdue_seconds = count, max(0, waited)

    def _sweep_run(self, run_id: str, deadline: float, min_work: float, report: SweepSummary) -> None:
        bind_run(run_id)
        if deadline - self.retry.monotonic() < min_work:
            self._count(report, "deferred")
            return
        snapshot: RunSnapshot | None = None
        try:
            snapshot = self.runs.get_run(run_id)
            if snapshot is not None:
                self._redrive(snapshot, deadline, min_work, report)
        except Exception as exc:  # one broken run must not stop the others
            self.log.error("sweep.run_failed", exc_info=exc)
            self._count(report, "failed")
            self._push_back(snapshot)

    def _redrive(self, snapshot: RunSnapshot, deadline: float, min_work: float, report: SweepSummary) -> None:
        wanted = len(runnable_steps(snapshot, self.clock.now()))
        slots = self.executor.slots
        taken = (
            slots.take(
                min(wanted, self.executor.policy.max_parallel_steps), deadline - min_work - self.retry.monotonic()
            )
            if wanted
            else 0
        )
        if wanted and not taken:
            self._count(report, "deferred")
            return
        # Slots not claimed (refused, exhausted, lost to another claimer) are given back at once.
        steps = self.executor.claim_and_run(snapshot, deadline, taken, taken) if taken else []
        self._count(report, "runs")
        self._count(report, "steps", len(steps))
        if not steps:
            self._count(report, "repaired", self._repair_wake(snapshot))

    def _count(self, report: SweepSummary, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(report, name, getattr(report, name) + by)

    def _repair_wake(self, run: RunSnapshot) -> int:
        """Recompute a due run's ``wakeAt``; one still due with nothing claimable (a dependency was
        reset, say) is looked at again a lease later, so it cannot hog the sweeper's query."""
        now = self.clock.now()
        wake = next_wake(run, now)
        if wake is not None and wake <= now:
            wake = now + timedelta(seconds=self.executor.policy.lease_seconds)
        if run.update_time is None or (wake == run.wake_at and not run.sweep_failures):
            return 0
        cleared: Patch = {SWEEP_FAILURES: Delete.FIELD} if run.sweep_failures else {}
        written = self.runs.write_if_unchanged(run.run_id, run.update_time, {**wake_field(wake), **cleared})
        return 1 if written is Written.LANDED else 0

    def _push_back(self, run: RunSnapshot | None) -> None:
        """Look at a run that raised again later, later each time it raises in a row."""
        if run is None or run.update_time is None:
            return
        failures = run.sweep_failures + 1
        delay = min(SWEEP_BACKOFF_CAP_SECONDS, SWEEP_BACKOFF_BASE_SECONDS * 2 ** min(failures - 1, 16))
        patch: Patch = {WAKE_AT: self.clock.now() + timedelta(seconds=delay), SWEEP_FAILURES: failures}
        try:
            self.runs.write_if_unchanged(run.run_id, run.update_time, patch)
        except Exception as exc:
            self.log.error("sweep.run_failed", reason="push_back_failed", exc_info=exc)
