"""Which steps of a run snapshot may run now, and the single write that claims them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker_llm_client.core.transitions import claim_patch, exhausted_patch, is_claimable
from worker_llm_client.models import (
    LLM_REPORT,
    RUN_CANCELLED,
    Claim,
    FieldPathTuple,
    RunSnapshot,
    Step,
    StepStatus,
)


def dependencies_met(step: Step, steps: Mapping[str, Step]) -> bool:
    """True when every ``dependsOn`` step has SUCCEEDED.

    A malformed ``dependsOn`` also counts as met: the step is then claimed and fails with
    INVALID_STEP, instead of waiting forever for something that can never happen.
    """
    depends_on = step.data.get("dependsOn")
    if depends_on is None:
        return True
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        return True
    return all(
        dep not in steps or dep == step.step_id or steps[dep].status == StepStatus.SUCCEEDED for dep in depends_on
    )


def runnable_steps(run: RunSnapshot, now: datetime) -> list[Step]:
    """LLM_REPORT steps in a claimable status with their dependencies met, ordered by id."""
    if run.status == RUN_CANCELLED:
        return []
    return [
        step
        for _, step in sorted(run.steps.items())
        if step.type == LLM_REPORT and is_claimable(step, now) and dependencies_met(step, run.steps)
    ]


@dataclass(frozen=True)
class ClaimPlan:
    """One precondition write: claimed steps go RUNNING, exhausted re-drives go FAILED."""

    claimed: list[tuple[Step, Claim]] = field(default_factory=list)
    exhausted: list[Step] = field(default_factory=list)
    patch: dict[FieldPathTuple, Any] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.patch


def plan_claims(run: RunSnapshot, now: datetime, limit: int, new_claim: Callable[[], Claim]) -> ClaimPlan:
    """Claim up to ``limit`` runnable steps; the rest stay for the event our write causes."""
    plan = ClaimPlan()
    for step in runnable_steps(run, now):
        failed = exhausted_patch(step, now)
        if failed is not None:
            plan.exhausted.append(step)
            plan.patch.update(failed)
            continue
        if len(plan.claimed) >= limit:
            continue
        claim = new_claim()
        patch = claim_patch(step, claim, now)
        if patch is not None:
            plan.claimed.append((step, claim))
            plan.patch.update(patch)
    return plan
