"""The use case: claim (claim_steps.py) -> produce the report (produce_report.py) -> finalize.

``RunExecutor.handle(snapshot)`` claims the runnable steps of a run in one precondition write (as
many as the instance has free step slots for), runs the claimed steps concurrently, each thread
going on with the step its finalize claimed next (next_claim.py), and finalizes each guarded by
its claim token (a read, or the version our last finalize left, then a precondition write). The
clock is read once per decision; every outside effect goes through a port.

Every claimed step ends in a recorded outcome within the invocation: a ``StepError`` is recorded
as itself, anything else as ``INTERNAL`` (its type in the message, the traceback in the log), and
a finalize that meets a transient Firestore failure or keeps conflicting is retried until the
invocation's finalize window closes. Only then does the step wait for its lease; its re-claim
reuses the report it left in GCS (a salvage claim, on the last attempt).
"""

from __future__ import annotations

import contextvars
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from worker_llm_client import tracing
from worker_llm_client.call_model import ModelRetry
from worker_llm_client.claim_steps import CLAIM_ROUNDS, Claiming
from worker_llm_client.core.claim_planning import in_flight
from worker_llm_client.core.retry_policy import after_failure, error_record
from worker_llm_client.core.transitions import failed_patch, max_attempts, retry_wait_patch, succeeded_patch
from worker_llm_client.errors import Internal, RunStoreUnavailable, RunTooLarge, StepError
from worker_llm_client.execution_models import ClaimedStep
from worker_llm_client.models import DEFAULT_MAX_ATTEMPTS, Patch, RunSnapshot
from worker_llm_client.next_claim import MIN_NEXT_SECONDS, NextClaim
from worker_llm_client.observability import bind_step, get_logger
from worker_llm_client.ports import ArtifactStore, CatalogStore, Clock, FollowOn, LlmClient, RunStore
from worker_llm_client.produce_report import ReportProducer
from worker_llm_client.step_slots import StepSlots

# Steps an instance may hold claimed, per model slot (MAX_PARALLEL_STEPS): while one step waits for
# the model, another renders, uploads or finalizes. Measured on the run-size figure (N=500): 1x
# left the model slots idle between steps (wall 1.63x ideal), 2x kept them busy (1.27-1.34x) with
# no claim conflicts; unbounded (8 per event, before issue 15) hoarded steps behind the gate.
CLAIM_AHEAD = 2
DEFAULT_FINALIZE_SECONDS = 60.0
FINALIZE_BACKOFF_CAP_SECONDS = 4.0
FINALIZE_MAX_TRIES = 30  # a backstop for an unbounded window: about 100 s of trying


@dataclass(frozen=True)
class ExecutorPolicy:
    worker_id: str
    lease_seconds: int
    max_parallel_steps: int
    allowed_llm_profiles: frozenset[str]
    allowed_models: frozenset[str]
    work_seconds: float = float("inf")  # how long a claimed step may take in this invocation
    finalize_seconds: float = DEFAULT_FINALIZE_SECONDS  # then how long its finalize may keep trying


@dataclass
class SweepSummary:
    runs: int = 0  # due runs looked at
    steps: int = 0  # steps re-driven (claimed, executed and finalized)
    repaired: int = 0  # runs whose stale wakeAt was recomputed
    failed: int = 0  # runs that raised (logged, pushed back); the sweep went on
    deferred: int = 0  # due runs left for the next sweep: too little of its window was left
    overdue_runs: int | None = None  # runs still due when the sweep ended (None: could not be counted)
    oldest_overdue_seconds: int | None = None  # how long the earliest of them has been due


@dataclass(frozen=True)
class StepResult:
    step_id: str
    status: str
    code: str | None
    finalized: bool


class RunExecutor(Claiming):
    def __init__(
        self,
        runs: RunStore,
        catalog: CatalogStore,
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
        self.retry = retry or ModelRetry()  # also the use case's clock for deadlines, and its sleep
        self.producer = ReportProducer(
            catalog,
            artifacts,
            llm,
            policy.allowed_llm_profiles,
            policy.allowed_models,
            timer=timer,
            retry=self.retry,
            max_inflight=policy.max_parallel_steps,
        )
        self.slots = StepSlots(CLAIM_AHEAD * policy.max_parallel_steps)
        self.closers = closers
        self.log = get_logger()

    def close(self) -> None:
        """Release the clients the composition root built (a deployed instance never needs to)."""
        for close in self.closers:
            close()

    def handle(self, run: RunSnapshot, deadline: float | None = None, limit: int | None = None) -> list[StepResult]:
        """An event's work: claim what is runnable in ``run``, as many steps as the instance has
        free step slots for (at most ``limit``), and execute them, finishing before ``deadline``
        (monotonic; by default this invocation's work window from now).

        One claim write: when it conflicts, the write that won causes its own event, with a fresher
        document than a read would give here (the run is read only to learn whether a retried
        commit had landed). With no slot free, a run with steps in flight is left to them: each
        finalize claims the next step (``next_claim.py``) and causes an event; a run with none in
        flight gets one step claimed anyway, so that it never waits for the sweeper because this
        instance was busy."""
        if deadline is None:
            deadline = self.retry.monotonic() + self.policy.work_seconds
        taken = self.slots.take(limit or self.policy.max_parallel_steps, timeout=0.0)
        if not taken and in_flight(run, self.clock.now()):
            self.log.info("event.ignored", reason="instance_busy")
            return []
        return self.claim_and_run(run, deadline, taken, taken or 1, rounds=1)

    def claim_and_run(
        self, run: RunSnapshot, deadline: float, taken: int, limit: int, rounds: int = CLAIM_ROUNDS
    ) -> list[StepResult]:
        """Claim up to ``limit`` steps of ``run`` (``claim``) and run them (``run_claimed``), with
        ``taken`` step slots taken for them: the slots no claimed step holds are given back (all of
        them, if the claim raised)."""
        claimed: list[ClaimedStep] = []
        try:
            snapshot, claimed = self.claim(run, deadline, limit, rounds=rounds)
        finally:
            self.slots.give(taken - min(taken, len(claimed)))
        return self.run_claimed(snapshot, claimed, slotted=min(taken, len(claimed)))

    def run_claimed(self, snapshot: RunSnapshot, claimed: list[ClaimedStep], slotted: int = 0) -> list[StepResult]:
        """Execute claimed steps concurrently, each to a recorded outcome, each followed by the
        steps its finalize claimed next (``next_claim.py``). The first ``slotted`` hold one of the
        instance's step slots each, given back when their thread ends."""
        chains = [(step, _Chain(self.slots, i < slotted)) for i, step in enumerate(claimed)]
        run_one = partial(self._run_chain, snapshot)
        if len(chains) <= 1:
            return [result for step, chain in chains for result in run_one(step, chain)]
        with ThreadPoolExecutor(max_workers=len(chains), thread_name_prefix="step") as pool:
            futures = [pool.submit(contextvars.copy_context().run, run_one, step, chain) for step, chain in chains]
            return [result for future in futures for result in future.result()]

    def _run_chain(self, run: RunSnapshot, claimed: ClaimedStep, chain: _Chain) -> list[StepResult]:
        results: list[StepResult] = []
        pending = [(run, claimed)]
        try:
            while pending:
                run, step = pending.pop()
                follow = self._next_claim(step, chain)
                results.append(self.execute(run, step, follow))
                pending += follow.claimed() if follow is not None else []
        finally:
            chain.release()
        return results

    def _next_claim(self, claimed: ClaimedStep, chain: _Chain) -> NextClaim | None:
        """The follow-on of ``claimed``'s finalize, while the work window leaves time for a step;
        it claims only for a thread that holds a step slot (or gets one then), so the steps an
        instance holds never outnumber its slots (``CLAIM_AHEAD`` x ``MAX_PARALLEL_STEPS``)."""
        if self.retry.monotonic() + MIN_NEXT_SECONDS > claimed.deadline:
            return None  # too little of the work window is left for another step
        accept = lambda run, plan: self._accept(run, plan.claimed, plan, claimed.deadline)  # noqa: E731
        return NextClaim(self.clock.now, self._new_claim, accept, chain.room)

    def sweep(self, limit: int) -> SweepSummary:
        """Re-drive runs whose ``executor.wakeAt`` has come; see ``sweep_runs.py``."""
        from worker_llm_client.sweep_runs import Sweeper

        return Sweeper(self).sweep(limit)

    def execute(self, run: RunSnapshot, claimed: ClaimedStep, follow: FollowOn | None = None) -> StepResult:
        """Produce the step's report and record the outcome, whatever happens on the way (with what
        ``follow`` adds to the same write)."""
        bind_step(claimed.step.step_id, claimed.attempt)
        ids: dict[str, tracing.AttributeValue] = {"flow.run_id": claimed.run_id, "flow.step_id": claimed.step.step_id}
        ids["flow.attempt"] = claimed.attempt
        with tracing.span("step", ids) as span:
            result, cost = self._execute(run, claimed, follow)
            span.set(**{"flow.status": result.status, "flow.cost_usd": cost})
            if result.code is not None:
                span.fail(result.code)
        return result

    def _execute(
        self, run: RunSnapshot, claimed: ClaimedStep, follow: FollowOn | None
    ) -> tuple[StepResult, float | None]:
        try:
            outputs = self.producer.produce(run, claimed)  # raises nothing but a StepError
        except StepError as error:
            return self._finalize_error(claimed, error, follow), error.cost_usd
        patch = succeeded_patch(claimed.step.step_id, outputs, self.clock.now())
        finalized = self._finalize(claimed, patch, follow)
        if finalized:
            self.log.info(
                "step.succeeded",
                gcsUri=outputs["gcs_uri"],
                llmCalls=outputs["llmCalls"],
                cached=outputs["cached"],
                costUsd=outputs["costUsd"],
            )
        return StepResult(claimed.step.step_id, "SUCCEEDED", None, finalized), outputs["costUsd"]

    def _internal(self, exc: BaseException, where: str) -> Internal:
        self.log.error("step.internal_error", where=where, exc_info=exc)
        return Internal.from_exception(exc, where)

    def _finalize_error(self, claimed: ClaimedStep, error: StepError, follow: FollowOn | None) -> StepResult:
        step_id = claimed.step.step_id
        budget = max_attempts(claimed.step) or DEFAULT_MAX_ATTEMPTS
        outcome = after_failure(error, claimed.attempt, budget, self.clock.now())
        if outcome.retry_at is None:
            patch = failed_patch(step_id, outcome.error, self.clock.now())
        else:
            patch = retry_wait_patch(step_id, outcome.error, outcome.retry_at)
        finalized = self._finalize(claimed, patch, follow)
        cost = {"llmCalls": error.llm_calls, "usage": error.usage, "costUsd": error.cost_usd}
        if finalized and outcome.retry_at is None:
            self.log.warning("step.failed", code=error.code, retryable=error.retryable, **cost)
        elif finalized and outcome.retry_at is not None:
            self.log.warning("step.retry_scheduled", code=error.code, retryAt=outcome.retry_at.isoformat(), **cost)
        return StepResult(step_id, "FAILED" if outcome.failed else "RETRY_WAIT", error.code, finalized)

    def _finalize(self, claimed: ClaimedStep, patch: Patch, follow: FollowOn | None = None) -> bool:
        """Write ``patch`` if the step is still ours, retrying transient failures and conflicts
        until the finalize window closes. A result the document cannot hold is recorded as
        RUN_TOO_LARGE instead; anything unforeseen as INTERNAL. False: not written (the step is no
        longer ours, or the window closed: then its lease and the sweeper take over)."""
        with tracing.span("finalize", {"flow.step_id": claimed.step.step_id}) as span:
            written = self._write_result(claimed, patch, follow)
            span.set(**{"flow.written": written})
        return written

    def _write_result(self, claimed: ClaimedStep, patch: Patch, follow: FollowOn | None) -> bool:
        step_id, token = claimed.step.step_id, claimed.claim.token
        give_up_at = claimed.deadline + self.policy.finalize_seconds
        retried = False  # a transient failure may come after the write landed: the next try checks
        tries = 0
        while True:
            tries += 1
            try:
                if self.runs.finalize(claimed.run_id, step_id, token, patch, retried=retried, follow=follow):
                    return True
                self.log.warning("step.claim_conflict", reason="finalize_discarded_step_no_longer_held")
                return False
            except RunStoreUnavailable as error:
                jitter = random.random()  # noqa: S311  # nosec B311  # backoff jitter, not a secret
                wait = min(FINALIZE_BACKOFF_CAP_SECONDS, 0.1 * 2 ** min(tries, 16)) * (0.5 + jitter / 2)
                if self.retry.monotonic() + wait >= give_up_at or tries >= FINALIZE_MAX_TRIES:
                    self.log.error("step.finalize_failed", reason="window_closed", tries=tries, detail=str(error))
                    return False
                self.log.warning("step.finalize_retry", tries=tries, waitSeconds=round(wait, 3), detail=str(error))
                self.retry.sleep(wait)
                retried = True
            except RunTooLarge as error:
                if _is_failure_of(patch, error.code):
                    self.log.error("step.finalize_failed", reason="run_document_full", detail=error.message)
                    return False
                patch, retried = self._failure_patch(claimed, error), False
            except Exception as exc:
                if _is_failure_of(patch, Internal.code):
                    self.log.error("step.finalize_failed", reason="internal_error", errorType=type(exc).__name__)
                    return False
                patch, retried = self._failure_patch(claimed, self._internal(exc, "finalizing the step")), False

    def _failure_patch(self, claimed: ClaimedStep, error: StepError) -> Patch:
        self.log.warning("step.finalize_replaced", code=error.code)
        return failed_patch(claimed.step.step_id, error_record(error, claimed.attempt), self.clock.now())


class _Chain:
    """One thread's steps, one after another: whether it holds a step slot (taken for it before
    its claim, or when its finalize first claims a next step), given back when it ends."""

    def __init__(self, slots: StepSlots, holds: bool) -> None:
        self.slots, self.holds = slots, holds

    def room(self) -> bool:
        if not self.holds:
            self.holds = self.slots.take(1, timeout=0.0) == 1
        return self.holds

    def release(self) -> None:
        if self.holds:
            self.holds = False
            self.slots.give(1)


def _is_failure_of(patch: Patch, code: str) -> bool:
    errors: list[Any] = [value for path, value in patch.items() if path[-1] == "error"]
    return any(isinstance(e, dict) and e.get("code") == code for e in errors)
