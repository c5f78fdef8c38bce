"""``redrive RUN_ID STEP_ID``: an operator sets a FAILED or RETRY_WAIT step back to READY.

The decision and the patch are pure (``plan``); ``redrive`` reads the run and writes the patch with
a precondition on the read's ``update_time``, deciding again on the run as it is after a conflict.
The step keeps its ``attempt`` (history; artifact names use it) and gets a fresh budget instead:
``maxAttempts`` = ``attempt`` + its own budget (its ``maxAttempts`` before any re-drive, 3 by
default; kept as ``redrive.budget`` so that a second re-drive does not grant the first one's
raised figure), since a claim of READY counts ``attempt + 1`` and a retryable failure is final
once ``attempt >= maxAttempts``. The previous
error moves to ``redrive.previousError``; ``executor.wakeAt`` is set to now so that the sweeper
picks the step up even if no event does.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker_llm_client.core.transitions import Delete, max_attempts, step_path
from worker_llm_client.core.wake import WAKE_AT
from worker_llm_client.models import DEFAULT_MAX_ATTEMPTS, LLM_REPORT, RUN_CANCELLED, Patch, RunSnapshot, Step
from worker_llm_client.models import StepStatus as S
from worker_llm_client.operations import OperatorError
from worker_llm_client.operations.store import call_options, firestore_errors, read_run, run_ref

REDRIVE_FROM = frozenset({S.FAILED, S.RETRY_WAIT})
FORCED_FROM = REDRIVE_FROM | {S.SUCCEEDED, S.RUNNING}
CLEARED = ("retryAt", "finishedAt", "outputs", "error")
WRITE_ROUNDS = 3
LISTED_STEPS = 10
WHY_NOT: dict[str, str] = {
    S.READY: "is already READY: it waits to be claimed once its dependencies have SUCCEEDED",
    S.PENDING: "is PENDING: its orchestrator has not released it yet",
    S.CANCELLED: "is CANCELLED: its orchestrator withdrew it",
    S.RUNNING: "is RUNNING: a worker holds it; pass --force to take it back (its result will be discarded)",
    S.SUCCEEDED: "has SUCCEEDED; pass --force to run it again",
}


@dataclass(frozen=True)
class Redrive:
    """What a re-drive did, as ``describe`` prints it."""

    run_id: str
    step_id: str
    from_status: str
    from_attempt: int
    max_attempts: int
    count: int
    by: str

    def describe(self) -> str:
        return (
            f"flow_runs/{self.run_id} steps.{self.step_id} {self.from_status} (attempt {self.from_attempt}) -> READY; "
            f"maxAttempts {self.max_attempts}; re-drive #{self.count} by {self.by}"
        )


def check(run: RunSnapshot, step_id: str, force: bool = False) -> Step:
    """The step to re-drive; ``OperatorError`` (2) saying why not."""
    step = run.steps.get(step_id)
    if step is None:
        ids = sorted(run.steps)
        more = f" (and {len(ids) - LISTED_STEPS} more)" if len(ids) > LISTED_STEPS else ""
        listed = ", ".join(ids[:LISTED_STEPS]) + more
        raise OperatorError(f"run '{run.run_id}' has no step '{step_id}'; its steps: {listed or '(none)'}")
    if step.type != LLM_REPORT:
        raise OperatorError(f"step '{step_id}' is of type '{step.type}': only LLM_REPORT steps are executed here")
    if run.status == RUN_CANCELLED:
        raise OperatorError(f"run '{run.run_id}' is CANCELLED: none of its steps will be claimed")
    if step.status in (FORCED_FROM if force else REDRIVE_FROM):
        return step
    why = WHY_NOT.get(step.status) or f"has status {step.status!r}"
    if step.status not in FORCED_FROM:
        why += "; re-drive applies to FAILED or RETRY_WAIT steps (SUCCEEDED and RUNNING ones with --force)"
    raise OperatorError(f"step '{step_id}' {why}")


def plan(run: RunSnapshot, step_id: str, by: str, now: Any, force: bool = False) -> tuple[Redrive, Patch]:
    """The re-drive of ``step_id`` and its patch; ``now`` is the server-time marker the write uses."""
    step = check(run, step_id, force)
    raw = step.data.get("redrive")
    previous: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    fresh = _positive(previous.get("budget")) or max_attempts(step) or DEFAULT_MAX_ATTEMPTS
    count = (_positive(previous.get("count")) or 0) + 1
    budget = step.attempt + fresh
    record = {
        "by": by,
        "at": now,
        "fromStatus": step.status,
        "fromAttempt": step.attempt,
        "previousError": step.data.get("error"),
        "previousMaxAttempts": step.data.get("maxAttempts"),
        "budget": fresh,  # the step's own budget: what every later re-drive grants again
        "count": count,
    }
    patch: dict[tuple[str, ...], Any] = {step_path(step_id, name): Delete.FIELD for name in CLEARED}
    patch |= {
        step_path(step_id, "status"): S.READY.value,
        step_path(step_id, "maxAttempts"): budget,
        step_path(step_id, "redrive"): record,
        WAKE_AT: now,
    }
    return Redrive(run.run_id, step_id, step.status, step.attempt, budget, count, by), patch


def redrive(client: Any, run_id: str, step_id: str, by: str, force: bool = False) -> Redrive:
    """Read, decide, write with a precondition; after a conflict read and decide again (3 rounds)."""
    from google.api_core import exceptions as gexc
    from google.cloud import firestore

    from worker_llm_client.adapters.firestore_runs import to_firestore_updates

    sent: Redrive | None = None
    for _ in range(WRITE_ROUNDS):
        run = read_run(client, run_id)
        if sent is not None and landed(run, sent):
            return sent  # a retried write failed its own precondition: its first try had landed
        sent, patch = plan(run, step_id, by, firestore.SERVER_TIMESTAMP, force)
        option = client.write_option(last_update_time=run.update_time)
        with firestore_errors(f"writing run '{run_id}'"):
            try:
                run_ref(client, run_id).update(to_firestore_updates(patch), option=option, **call_options())
            except (gexc.FailedPrecondition, gexc.NotFound):
                continue  # the run changed (or went) since the read
        return sent
    raise OperatorError("the run changed while re-driving; try again", exit_code=1)


def landed(run: RunSnapshot, sent: Redrive) -> bool:
    """``run`` shows ``sent`` written: the step carries that re-drive's record (count, operator, origin),
    whatever became of it since (an event may have claimed it already)."""
    step = run.steps.get(sent.step_id)
    raw = step.data.get("redrive") if step is not None else None
    record: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    mine = {"count": sent.count, "by": sent.by, "fromAttempt": sent.from_attempt, "fromStatus": sent.from_status}
    return all(record.get(key) == value for key, value in mine.items())


def _positive(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def operator() -> str:
    """``user@host``: who re-drives, when ``--by`` is not given."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no USER/LOGNAME and no passwd entry (a bare container)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
