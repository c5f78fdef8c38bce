"""Which steps of a run snapshot may run now: the one decision the no-op event path makes.

Claiming them (one precondition write) is ``claim_planning.py``, imported only when there is work.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from worker_llm_client.core.transitions import is_claimable
from worker_llm_client.models import LLM_REPORT, RUN_CANCELLED, RunSnapshot, Step, StepStatus


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
