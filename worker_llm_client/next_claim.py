"""A finished step's slot goes to the next runnable step in the finalize's own write.

When a step's finalize is written, the run as that write leaves it may have a step that is now
runnable: a dependent whose last dependency just SUCCEEDED, or a READY step the run's claims left
for later. ``NextClaim`` (a ``FollowOn`` of ``ports.py``) plans one claim on that run, so the same
precondition write records the outcome and claims the next step: the step starts without waiting
for the write's event to come back (a hop no longer costs an event round trip and a read of the
whole run), the write's event finds nothing left to do, and an instance never holds more steps
than it claimed at first. It is offered only while the invocation has ``MIN_NEXT_SECONDS`` of its
work window left, and planned only when the run's size bound proves room for the result: the run
it is planned on is the finalize's read with patches applied, whose document is not walked (a
tight run is left to the write's event, which decides on the document it carries).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from worker_llm_client.core.claim_planning import ClaimPlan, plan_claims
from worker_llm_client.execution_models import Claim, ClaimedStep
from worker_llm_client.models import Patch, RunSnapshot
from worker_llm_client.observability import get_logger

MIN_NEXT_SECONDS = 60.0

Accept = Callable[[RunSnapshot, ClaimPlan], list[ClaimedStep]]


class NextClaim:
    def __init__(
        self,
        now: Callable[[], datetime],
        new_claim: Callable[[datetime], Claim],
        accept: Accept,
        room: Callable[[], bool] = lambda: True,
    ) -> None:
        self.now, self.new_claim, self.accept, self.room = now, new_claim, accept, room
        self._last = ClaimPlan()
        self._landed: RunSnapshot | None = None

    def plan(self, run: RunSnapshot) -> Patch:
        """One claim on ``run`` while the instance has ``room``; nothing (never an error: the finalize
        must not fail for it) if the plan cannot be made."""
        self._last = self._plan(run) if self.room() else ClaimPlan()
        return self._last.patch

    def _plan(self, run: RunSnapshot) -> ClaimPlan:
        try:
            now = self.now()  # a plan only where the size bound proves room: never a walk of the document
            return plan_claims(run, now, 1, lambda: self.new_claim(now), measure=False)
        except Exception as exc:
            get_logger().error("step.internal_error", where="planning the next claim", exc_info=exc)
            return ClaimPlan()

    def landed(self, run: RunSnapshot) -> None:
        self._landed = run

    def claimed(self) -> list[tuple[RunSnapshot, ClaimedStep]]:
        """The step the landed write claimed (logged as claimed), with the run as it left it."""
        run = self._landed
        if run is None or self._last.empty:
            return []
        return [(run, step) for step in self.accept(run, self._last)]
