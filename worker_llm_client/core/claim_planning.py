"""The single precondition write that claims a run's runnable steps.

Apart from ``step_selection.py`` because only an event with work gets this far: the no-op path
asks ``runnable_steps`` and stops (see ``execution_models.py`` on cold start).

What cannot fit in the run document is refused in the same write, before anything is spent on
it (``document_size.py``): every report step of a run over ``MAX_STEPS_PER_RUN`` steps, and a
step for whose result the document has no room left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker_llm_client.core.document_size import MAX_STEPS_PER_RUN, document_size, room_for_results
from worker_llm_client.core.retry_policy import error_record
from worker_llm_client.core.step_selection import runnable_steps
from worker_llm_client.core.transitions import claim_attempt, claim_patch, exhausted_patch, failed_patch, lease_expired
from worker_llm_client.errors import RunTooLarge
from worker_llm_client.execution_models import Claim
from worker_llm_client.models import RUNS, FieldPathTuple, RunSnapshot, Step, StepStatus


@dataclass(frozen=True)
class PlannedClaim:
    step: Step
    claim: Claim
    attempt: int
    salvage: bool  # the last attempt's lease expired: finalize with its report if it left one


@dataclass(frozen=True)
class ClaimPlan:
    """One precondition write: claimed steps go RUNNING, exhausted re-drives and steps that
    cannot fit go FAILED."""

    claimed: list[PlannedClaim] = field(default_factory=list)
    exhausted: list[Step] = field(default_factory=list)
    refused: list[tuple[Step, RunTooLarge]] = field(default_factory=list)
    patch: dict[FieldPathTuple, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.patch


def plan_claims(
    run: RunSnapshot, now: datetime, limit: int, new_claim: Callable[[], Claim], measure: bool = True
) -> ClaimPlan:
    """Claim up to ``limit`` runnable steps; the rest stay for the event our write causes (or the
    sweeper: ``wake.py``). A step is refused RUN_TOO_LARGE when the run has too many steps, or when
    no room is left for its result even with no other result still to come; while other claimed
    steps hold reservations it waits READY instead. The run's size bound is trusted when it leaves
    room for ``limit`` results; else the document is measured, or, with ``measure`` False, nothing
    is planned (the run's own event decides, on the document)."""
    plan = ClaimPlan()
    oversized = _too_many_steps(run)
    holding = in_flight(run, now)
    size = run.size_bound  # measured without decoding the document; exact only when it is not enough
    if size is None or room_for_results(size, holding) < limit:
        if not measure:
            return plan
        size = document_size((RUNS, run.run_id), run.document)
    room = room_for_results(size, holding)
    for step in runnable_steps(run, now):
        failed = exhausted_patch(step, now)
        if failed is not None:
            plan.exhausted.append(step)
            plan.patch.update(failed)
        elif oversized is not None:
            _refuse(plan, step, oversized, now)
        elif len(plan.claimed) >= limit:
            continue
        elif room <= 0 and not (holding or plan.claimed):
            _refuse(plan, step, _no_room(size), now)
        elif room > 0 and (planned := claim_attempt(step, now)) is not None:
            claim = new_claim()
            plan.claimed.append(PlannedClaim(step, claim, *planned))
            plan.patch.update(claim_patch(step, claim, now) or {})
            room -= 1
    return plan


def _too_many_steps(run: RunSnapshot) -> RunTooLarge | None:
    if len(run.steps) <= MAX_STEPS_PER_RUN:
        return None
    return RunTooLarge(f"the run has {len(run.steps)} steps; a run may have at most {MAX_STEPS_PER_RUN}")


def _no_room(size: int) -> RunTooLarge:
    return RunTooLarge(f"the run document ({size} bytes) has no room left for this step's result (1 MiB at most)")


def in_flight(run: RunSnapshot, now: datetime) -> int:
    """Steps held by a live claim: their results are still to be written."""
    return sum(1 for s in run.steps.values() if s.status == StepStatus.RUNNING and not lease_expired(s, now))


def _refuse(plan: ClaimPlan, step: Step, error: RunTooLarge, now: datetime) -> None:
    plan.refused.append((step, error))
    plan.patch.update(failed_patch(step.step_id, error_record(error, step.attempt), now))
