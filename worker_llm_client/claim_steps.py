"""Claims: the precondition writes that move a run's runnable steps to RUNNING (the use case's
first half; ``execute_step.py`` is the rest).

``Claiming`` is part of ``RunExecutor`` (a mixin), kept apart to keep each module readable: it uses
the executor's ``runs``, ``clock``, ``policy``, ``retry``, ``new_token`` and ``log``. A claim plans
on a snapshot (``core/claim_planning.py``) and writes with a precondition on its ``update_time``.
An event's claim makes one write (its conflict is left to the event of the write that won); the
sweeper's reads the run again after a conflict and decides again, up to ``CLAIM_ROUNDS`` writes.
The run is also read after a conflict that followed the client's own retry of the commit
(``Written.UNCERTAIN``): only a read tells whether that claim had landed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from worker_llm_client import tracing
from worker_llm_client.core.claim_planning import ClaimPlan, PlannedClaim, plan_claims
from worker_llm_client.core.wake import with_wake
from worker_llm_client.errors import RunTooLarge
from worker_llm_client.execution_models import Claim, ClaimedStep
from worker_llm_client.models import RunSnapshot, StepStatus, Written

if TYPE_CHECKING:
    from worker_llm_client.call_model import ModelRetry
    from worker_llm_client.execute_step import ExecutorPolicy
    from worker_llm_client.ports import Clock, RunStore

CLAIM_ROUNDS = 5


class Claiming:
    runs: RunStore
    clock: Clock
    policy: ExecutorPolicy
    retry: ModelRetry
    new_token: Callable[[], str]
    log: Any

    def claim(
        self, run: RunSnapshot, deadline: float = float("inf"), limit: int | None = None, rounds: int = CLAIM_ROUNDS
    ) -> tuple[RunSnapshot, list[ClaimedStep]]:
        """Claim what is runnable in ``run`` with precondition writes: up to ``rounds`` of them, the
        run read again after each conflict but the last."""
        with tracing.span("claim", {"flow.run_id": run.run_id}) as span:
            snapshot, claimed = self._claim(run, deadline, limit or self.policy.max_parallel_steps, rounds)
            span.set(**{"flow.steps_claimed": len(claimed)})
        return snapshot, claimed

    def _claim(
        self, run: RunSnapshot, deadline: float, limit: int, rounds: int
    ) -> tuple[RunSnapshot, list[ClaimedStep]]:
        snapshot = run if run.update_time is not None else self.runs.get_run(run.run_id)
        for conflicts in range(rounds):
            if conflicts:
                self._back_off(conflicts)
            if snapshot is None or snapshot.update_time is None:
                return run, []
            now = self.clock.now()
            plan = plan_claims(snapshot, now, limit, partial(self._new_claim, now))
            if plan.empty:
                return snapshot, []
            written = self._write_claim(snapshot, snapshot.update_time, plan, now)
            if written is None:  # not even the claim fits: nothing can be recorded on this run
                return snapshot, []
            if written is Written.LANDED:
                return snapshot, self._accept(snapshot, plan.claimed, plan, deadline)
            last = conflicts + 1 == rounds
            fresh = None if last and written is Written.CONFLICT else self.runs.get_run(run.run_id)
            landed = _claims_landed(fresh, plan) if fresh is not None and written is Written.UNCERTAIN else []
            if landed:  # the commit was retried after it had already landed: those claims are ours
                return snapshot, self._accept(snapshot, landed, plan, deadline)
            self.log.info("step.claim_conflict", steps=len(plan.claimed), reason="run_changed_since_snapshot")
            snapshot = fresh
        if rounds > 1:
            self.log.warning("step.claim_conflict", reason="gave_up_after_rounds", rounds=rounds)
        return run, []

    def _write_claim(self, snapshot: RunSnapshot, read_at: datetime, plan: ClaimPlan, now: datetime) -> Written | None:
        """Whether the claim landed (precondition: the run is unchanged since ``read_at``, the snapshot's
        ``update_time``); None when the run document cannot hold it."""
        try:
            return self.runs.write_if_unchanged(snapshot.run_id, read_at, with_wake(snapshot, plan.patch, now))
        except RunTooLarge as error:
            self.log.error("step.claim_conflict", reason="run_document_full", detail=error.message)
            return None

    def _back_off(self, conflicts: int) -> None:
        jitter = random.random()  # noqa: S311  # nosec B311  # backoff jitter, not a secret
        self.retry.sleep(min(1.0, 0.02 * 2**conflicts) * (0.5 + jitter / 2))

    def _accept(
        self, snapshot: RunSnapshot, claims: list[PlannedClaim], plan: ClaimPlan, deadline: float
    ) -> list[ClaimedStep]:
        for step in plan.exhausted:
            written = plan.patch.get(("steps", step.step_id, "error"))
            code = written.get("code") if isinstance(written, dict) else None
            self.log.warning(
                "step.failed",
                stepId=step.step_id,
                attempt=step.attempt,
                code=code,
                retryable=True,
                reason="budget_used",
            )
        for step, error in plan.refused:
            self.log.warning(
                "step.failed", stepId=step.step_id, code=error.code, retryable=error.retryable, reason=error.message
            )
        claimed = [ClaimedStep(snapshot.run_id, c.step, c.attempt, c.claim, deadline, c.salvage) for c in claims]
        for item in claimed:
            if item.step.status == StepStatus.RUNNING:
                self.log.warning(
                    "step.lease_expired", stepId=item.step.step_id, attempt=item.step.attempt, salvage=item.salvage
                )
            self.log.info("step.claimed", stepId=item.step.step_id, attempt=item.attempt)
        return claimed

    def _new_claim(self, now: datetime) -> Claim:
        expires = now + timedelta(seconds=self.policy.lease_seconds)
        return Claim(self.new_token(), self.policy.worker_id, now, expires)


def _claims_landed(fresh: RunSnapshot, plan: ClaimPlan) -> list[PlannedClaim]:
    """The claims of ``plan`` that ``fresh`` shows RUNNING under the token we tried to write: a
    write that landed shows all of them, unless a step changed since (that one is not ours)."""
    return [
        c for c in plan.claimed if (now := fresh.steps.get(c.step.step_id)) is not None and now.held_by(c.claim.token)
    ]
