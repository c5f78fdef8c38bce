"""``executor.wakeAt``: the earliest time a run needs the sweeper (a retry due, a lease ending).

Kept on the run document by every claim and finalize, so the sweeper finds due runs with one
indexed range query instead of scanning. A cancelled run, or one with nothing waiting, has none.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from worker_llm_client.core.transitions import Delete, timestamp_at
from worker_llm_client.models import LLM_REPORT, RUN_CANCELLED, Patch, RunSnapshot, StepStatus, run_from_document

WAKE_AT = ("executor", "wakeAt")


def next_wake(run: RunSnapshot) -> datetime | None:
    if run.status == RUN_CANCELLED:
        return None
    times = [_wake(step_data, status) for step_data, status in _waiting(run)]
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _waiting(run: RunSnapshot) -> list[tuple[Any, str]]:
    return [
        (step, step.status)
        for step in run.steps.values()
        if step.type == LLM_REPORT and step.status in (StepStatus.RETRY_WAIT, StepStatus.RUNNING)
    ]


def _wake(step: Any, status: str) -> datetime | None:
    if status == StepStatus.RETRY_WAIT:
        return timestamp_at(step, "retryAt")
    return timestamp_at(step, "claim", "leaseExpiresAt")


def apply_patch(run: RunSnapshot, patch: Patch) -> RunSnapshot:
    """The run as it will be once ``patch`` is written (pure: the snapshot is not changed)."""
    data: dict[str, Any] = {
        "status": run.status,
        "steps": {sid: copy.deepcopy(dict(s.data)) for sid, s in run.steps.items()},
    }
    for path, value in patch.items():
        node = data
        for key in path[:-1]:
            child = node.get(key)
            node[key] = child = dict(child) if isinstance(child, Mapping) else {}
            node = child
        if value is Delete.FIELD:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
    return run_from_document(run.run_id, data, run.update_time, wake_at=run.wake_at)


def wake_field(wake: datetime | None) -> Patch:
    """``executor.wakeAt`` set to ``wake``, or removed when nothing waits."""
    return {WAKE_AT: wake if wake is not None else Delete.FIELD}


def wake_patch(run_after: RunSnapshot) -> Patch:
    return wake_field(next_wake(run_after))


def with_wake(run: RunSnapshot, patch: Patch) -> dict[tuple[str, ...], Any]:
    """``patch`` plus the ``executor.wakeAt`` the run will need after it."""
    return {**patch, **wake_patch(apply_patch(run, patch))}
