"""The single precondition write that claims a run's runnable steps.

Apart from ``step_selection.py`` because only an event with work gets this far: the no-op path
asks ``runnable_steps`` and stops (see ``report_models.py`` on cold start).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from worker_llm_client.core.step_selection import runnable_steps
from worker_llm_client.core.transitions import claim_patch, exhausted_patch
from worker_llm_client.models import FieldPathTuple, RunSnapshot, Step
from worker_llm_client.report_models import Claim


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
