"""The use case: claim -> produce the report (produce_report.py) -> finalize.

``RunExecutor.handle(snapshot)`` claims every runnable step of a run in one precondition write
(re-reading and deciding again on conflict), runs the claimed steps concurrently and finalizes
each guarded by its claim token (a read, then a precondition write). The clock is read once per
decision; every outside effect goes through a port.
"""

from __future__ import annotations

import contextvars
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from worker_llm_client.core.claim_planning import ClaimPlan, plan_claims
from worker_llm_client.core.retry_policy import after_failure
from worker_llm_client.core.transitions import failed_patch, max_attempts, retry_wait_patch, succeeded_patch
from worker_llm_client.core.wake import next_wake, wake_field, with_wake
from worker_llm_client.errors import StepError
from worker_llm_client.models import DEFAULT_MAX_ATTEMPTS, RunSnapshot, StepStatus
from worker_llm_client.observability import bind_event, bind_step, get_logger
from worker_llm_client.ports import ArtifactStore, Clock, ConfigStore, LlmClient, RunStore
from worker_llm_client.produce_report import ModelRetry, ReportProducer
from worker_llm_client.report_models import Claim, ClaimedStep

CLAIM_ROUNDS = 5


@dataclass(frozen=True)
class ExecutorPolicy:
    worker_id: str
    lease_seconds: int
    max_parallel_steps: int
    allowed_llm_profiles: frozenset[str]
    allowed_models: frozenset[str]
    work_seconds: float = float("inf")  # how long a claimed step may take in this invocation


@dataclass
class SweepReport:
    runs: int = 0  # due runs looked at
    steps: int = 0  # steps re-driven (claimed, executed and finalized)
    repaired: int = 0  # runs whose stale wakeAt was recomputed
    failed: int = 0  # runs that raised (logged); the sweep went on


@dataclass(frozen=True)
class StepReport:
    step_id: str
    status: str
    code: str | None
    finalized: bool


class RunExecutor:
    def __init__(
        self,
        runs: RunStore,
        configs: ConfigStore,
        artifacts: ArtifactStore,
        llm: LlmClient,
        clock: Clock,
        policy: ExecutorPolicy,
        new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
        timer: Callable[[], float] = time.perf_counter,
        closers: tuple[Callable[[], object], ...] = (),
        retry: ModelRetry | None = None,
    ) -> None:
        self.runs, self.clock, self.policy, self.new_token = runs, clock, policy, new_token
        self.producer = ReportProducer(
            configs,
            artifacts,
            llm,
            policy.allowed_llm_profiles,
            policy.allowed_models,
            timer=timer,
            retry=retry,
            max_inflight=policy.max_parallel_steps,
        )
        self.closers = closers
        self.log = get_logger()

    def close(self) -> None:
        """Release the clients the composition root built (a deployed instance never needs to)."""
        for close in self.closers:
            close()

    def handle(self, run: RunSnapshot, deadline: float | None = None) -> list[StepReport]:
        """Claim what is runnable in ``run`` (or its fresher self) and execute it, finishing before
        ``deadline`` (monotonic; by default this invocation's work window from now)."""
        if deadline is None:
            deadline = self.producer.retry.monotonic() + self.policy.work_seconds
        snapshot, claimed = self.claim(run, deadline)
        if len(claimed) <= 1:
            return [self.execute(snapshot, step) for step in claimed]
        with ThreadPoolExecutor(max_workers=len(claimed), thread_name_prefix="step") as pool:
            futures = [pool.submit(contextvars.copy_context().run, self.execute, snapshot, step) for step in claimed]
            return [future.result() for future in futures]

    def claim(self, run: RunSnapshot, deadline: float = float("inf")) -> tuple[RunSnapshot, list[ClaimedStep]]:
        snapshot: RunSnapshot | None = run
        for _ in range(CLAIM_ROUNDS):
            if snapshot is None:
                return run, []
            if snapshot.update_time is None:
                snapshot = self.runs.get_run(run.run_id)
                continue
            now = self.clock.now()
            plan = plan_claims(snapshot, now, self.policy.max_parallel_steps, partial(self._new_claim, now))
            if plan.empty:
                return snapshot, []
            if self.runs.write_if_unchanged(snapshot.run_id, snapshot.update_time, with_wake(snapshot, plan.patch)):
                return snapshot, self._accept(snapshot, plan, deadline)
            fresh = self.runs.get_run(run.run_id)
            if fresh is not None and _claim_landed(fresh, plan):
                # the commit was retried after it had already landed: the claim is ours after all
                return snapshot, self._accept(snapshot, plan, deadline)
            self.log.info("step.claim_conflict", steps=len(plan.claimed), reason="run_changed_since_snapshot")
            snapshot = fresh
        self.log.warning("step.claim_conflict", reason="gave_up_after_rounds", rounds=CLAIM_ROUNDS)
        return run, []

    def sweep(self, limit: int) -> SweepReport:
        """Re-drive runs whose ``executor.wakeAt`` has come (retries due, leases expired).

        Safe to run concurrently and repeatedly: every claim is a precondition write. A run with
        nothing claimable gets its ``wakeAt`` recomputed so it stops coming back.
        """
        report = SweepReport()
        deadline = self.producer.retry.monotonic() + self.policy.work_seconds  # one window for the whole sweep
        for run_id in self.runs.due_runs(self.clock.now(), limit):
            if self.producer.retry.monotonic() >= deadline:
                break  # the rest stay due for the next sweep
            bind_event(None, run_id, None)
            try:
                self._sweep_run(run_id, deadline, report)
            except Exception:  # one broken run must not stop the others
                self.log.exception("sweep.run_failed")
                report.failed += 1
        return report

    def _sweep_run(self, run_id: str, deadline: float, report: SweepReport) -> None:
        snapshot = self.runs.get_run(run_id)
        if snapshot is None:
            return
        steps = self.handle(snapshot, deadline)
        report.runs += 1
        report.steps += len(steps)
        if not steps:
            report.repaired += self._repair_wake(snapshot)

    def _repair_wake(self, run: RunSnapshot) -> int:
        """Recompute a due run's ``wakeAt``; one still due with nothing claimable (a dependency was
        reset, say) is looked at again a lease later, so it cannot hog the sweeper's query."""
        now = self.clock.now()
        wake = next_wake(run)
        if wake is not None and wake <= now:
            wake = now + timedelta(seconds=self.policy.lease_seconds)
        if run.update_time is None or wake == run.wake_at:
            return 0
        return int(self.runs.write_if_unchanged(run.run_id, run.update_time, wake_field(wake)))

    def _accept(self, snapshot: RunSnapshot, plan: ClaimPlan, deadline: float) -> list[ClaimedStep]:
        for step in plan.exhausted:
            self.log.warning("step.failed", stepId=step.step_id, attempt=step.attempt, reason="budget_used")
        claimed = [ClaimedStep(snapshot.run_id, s, s.attempt + 1, claim, deadline) for s, claim in plan.claimed]
        for item in claimed:
            if item.step.status == StepStatus.RUNNING:
                self.log.warning("step.lease_expired", stepId=item.step.step_id, attempt=item.step.attempt)
            self.log.info("step.claimed", stepId=item.step.step_id, attempt=item.attempt)
        return claimed

    def _new_claim(self, now: datetime) -> Claim:
        expires = now + timedelta(seconds=self.policy.lease_seconds)
        return Claim(self.new_token(), self.policy.worker_id, now, expires)

    def execute(self, run: RunSnapshot, claimed: ClaimedStep) -> StepReport:
        step_id = claimed.step.step_id
        bind_step(step_id, claimed.attempt)
        try:
            outputs = self.producer.produce(run, claimed)
        except StepError as error:
            return self._finalize_error(claimed, error)
        patch = succeeded_patch(step_id, outputs, self.clock.now())
        finalized = self.runs.finalize(claimed.run_id, step_id, claimed.claim.token, patch)
        if finalized:
            self.log.info(
                "step.succeeded", gcsUri=outputs["gcs_uri"], llmCalls=outputs["llmCalls"], cached=outputs["cached"]
            )
        else:
            self._log_discarded()
        return StepReport(step_id, "SUCCEEDED", None, finalized)

    def _finalize_error(self, claimed: ClaimedStep, error: StepError) -> StepReport:
        step_id = claimed.step.step_id
        budget = max_attempts(claimed.step) or DEFAULT_MAX_ATTEMPTS
        outcome = after_failure(error, claimed.attempt, budget, self.clock.now())
        if outcome.retry_at is None:
            patch = failed_patch(step_id, outcome.error, self.clock.now())
        else:
            patch = retry_wait_patch(step_id, outcome.error, outcome.retry_at)
        finalized = self.runs.finalize(claimed.run_id, step_id, claimed.claim.token, patch)
        if not finalized:
            self._log_discarded()
        elif outcome.retry_at is None:
            self.log.warning(
                "step.failed", code=error.code, retryable=error.retryable, llmCalls=error.llm_calls, usage=error.usage
            )
        else:
            retry_at = outcome.retry_at.isoformat()
            self.log.warning(
                "step.retry_scheduled", code=error.code, retryAt=retry_at, llmCalls=error.llm_calls, usage=error.usage
            )
        return StepReport(step_id, "FAILED" if outcome.failed else "RETRY_WAIT", error.code, finalized)

    def _log_discarded(self) -> None:
        self.log.warning("step.claim_conflict", reason="finalize_discarded_step_no_longer_held")


def _claim_landed(fresh: RunSnapshot, plan: ClaimPlan) -> bool:
    """True when ``fresh`` shows every step of ``plan`` RUNNING under the claim we tried to write."""
    return bool(plan.claimed) and all(
        (now := fresh.steps.get(step.step_id)) is not None and now.held_by(claim.token) for step, claim in plan.claimed
    )
