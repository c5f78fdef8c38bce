"""``executor.wakeAt``: the earliest time a run needs the sweeper.

Kept on the run document by every claim and finalize, so the sweeper finds due runs with one
indexed range query instead of scanning. A step needs the sweeper when its retry is due
(``retryAt``), when its lease ends (a worker may have died), or when it is READY with its
dependencies met but nobody claimed it (its event was lost, or it was beyond the instance's
capacity and the follow-up event was lost): those are looked at ``READY_WAKE_SECONDS`` after the
write that left them. A cancelled run, or one with nothing waiting, has no ``wakeAt``.

An orchestrator may set ``wakeAt`` itself (the contract's doorbell, e.g. to the time it writes
READY steps): the sweeper then looks at the run even if its event was lost. Every write of the
executor recomputes the field, since it has then looked at the run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from worker_llm_client.core.document_size import patch_size_bound
from worker_llm_client.core.step_selection import dependencies_met
from worker_llm_client.core.transitions import Delete, timestamp_at
from worker_llm_client.models import LLM_REPORT, RUN_CANCELLED, Patch, RunSnapshot, Step, StepStatus, step_of

WAKE_AT = ("executor", "wakeAt")
SWEEP_FAILURES = ("executor", "sweepFailures")
READY_WAKE_SECONDS = 60.0


def next_wake(run: RunSnapshot, now: datetime | None = None) -> datetime | None:
    """When ``run`` next needs the sweeper; READY steps count only when ``now`` is given."""
    if run.status == RUN_CANCELLED:
        return None
    ready_at = now + timedelta(seconds=READY_WAKE_SECONDS) if now is not None else None
    known = [t for step in run.steps.values() if step.type == LLM_REPORT and (t := _wake(step, run, ready_at))]
    return min(known) if known else None


def _wake(step: Step, run: RunSnapshot, ready_at: datetime | None) -> datetime | None:
    if step.status == StepStatus.RETRY_WAIT:
        return timestamp_at(step, "retryAt")
    if step.status == StepStatus.RUNNING:
        return timestamp_at(step, "claim", "leaseExpiresAt")
    if step.status == StepStatus.READY and ready_at is not None and dependencies_met(step, run.steps):
        return ready_at
    return None


def apply_patch(run: RunSnapshot, patch: Patch) -> RunSnapshot:
    """The run as it will be once ``patch`` is written (pure: the snapshot is not changed). Only
    the steps the patch touches are copied; the others are the snapshot's own. Its size bound grows
    by what the patch may add; its ``document`` stays the snapshot's (the fields as read)."""
    status = patch.get(("status",), run.status)
    touched: dict[str, dict[str, Any] | None] = {}  # None: the step is deleted
    for path, value in patch.items():
        if len(path) < 2 or path[0] != "steps":
            continue
        step_id = path[1]
        if len(path) == 2:  # the whole step
            touched[step_id] = None if value is Delete.FIELD else copy.deepcopy(dict(_mapping(value)))
            continue
        data = touched.get(step_id)
        if data is None:
            known = None if step_id in touched else run.steps.get(step_id)
            data = touched[step_id] = copy.deepcopy(dict(known.data)) if known is not None else {}
        _set(data, path[2:], value)
    steps = dict(run.steps)
    for step_id, data in touched.items():
        if data is None:
            steps.pop(step_id, None)
        else:
            steps[step_id] = step_of(step_id, data)
    bound = None if run.size_bound is None else run.size_bound + patch_size_bound(patch)
    return replace(run, status=status if isinstance(status, str) else "", steps=steps, size_bound=bound)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _set(node: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        child = node.get(key)
        node[key] = child = dict(child) if isinstance(child, Mapping) else {}
        node = child
    if value is Delete.FIELD:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value


def wake_field(wake: datetime | None) -> Patch:
    """``executor.wakeAt`` set to ``wake``, or removed when nothing waits."""
    return {WAKE_AT: wake if wake is not None else Delete.FIELD}


def with_wake(run: RunSnapshot, patch: Patch, now: datetime | None = None) -> dict[tuple[str, ...], Any]:
    """``patch`` plus the ``executor.wakeAt`` the run will need after it (READY steps left
    unclaimed count when ``now`` is given). A write of ours also clears a sweep's failure count."""
    cleared: Patch = {SWEEP_FAILURES: Delete.FIELD} if run.sweep_failures else {}
    return {**patch, **wake_field(next_wake(apply_patch(run, patch), now)), **cleared}
