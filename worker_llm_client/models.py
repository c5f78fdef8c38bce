"""The run document as plain values: what every event needs. No I/O, no google types.

Field paths are tuples of segments (``("steps", "weekly-report.v2", "status")``); only the
Firestore adapter turns them into quoted paths, so step ids may contain any character.

Cold start: this is the only models module the no-op event path (``import main``, decode, select)
loads. The values of doing work (claims, prompts, profiles, LLM requests and results, artifacts)
live in ``execution_models.py``, imported only once there is a step to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

RUNS = "flow_runs"  # the runs' collection; also the first segment of their artifacts' names
LLM_REPORT = "LLM_REPORT"
RUN_CANCELLED = "CANCELLED"
DEFAULT_MAX_ATTEMPTS = 3

FieldPathTuple = tuple[str, ...]
Patch = Mapping[FieldPathTuple, Any]


class StepStatus(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    RUNNING = "RUNNING"
    RETRY_WAIT = "RETRY_WAIT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Written(StrEnum):
    """What a precondition write (``RunStore.write_if_unchanged``) did."""

    LANDED = "landed"
    CONFLICT = "conflict"  # the run changed since the given update_time: nothing was written
    UNCERTAIN = "uncertain"  # the precondition failed on a retried commit: an earlier try may have landed


@dataclass(frozen=True)
class Step:
    """One entry of ``flow_runs/{runId}.steps`` as the executor sees it."""

    step_id: str
    type: str
    status: str
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def attempt(self) -> int:
        value = self.data.get("attempt", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def claim(self) -> Mapping[str, Any]:
        value = self.data.get("claim")
        return value if isinstance(value, Mapping) else {}

    @property
    def claim_token(self) -> str | None:
        token = self.claim.get("token")
        return token if isinstance(token, str) else None

    def held_by(self, token: str) -> bool:
        """RUNNING under the claim ``token``: only that claim's holder may finalize it."""
        return self.status == StepStatus.RUNNING and self.claim_token == token


@dataclass(frozen=True)
class RunSnapshot:
    """A run document at one point in time; ``update_time`` is the precondition for claims."""

    run_id: str
    status: str
    steps: Mapping[str, Step]
    update_time: datetime | None
    wake_at: datetime | None = None  # executor.wakeAt as stored
    sweep_failures: int = 0  # executor.sweepFailures: sweeps in a row that raised on this run
    document: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # every field, as read
    size_bound: int | None = field(default=None, compare=False)  # at least its Firestore size, if measured


def run_from_document(
    run_id: str,
    data: Mapping[str, Any],
    update_time: datetime | None,
    wake_at: datetime | None = None,
    size_bound: int | None = None,
    steps: Mapping[str, Step] | None = None,
) -> RunSnapshot:
    """A run snapshot from a decoded document (its ``steps`` built from ``data`` unless given);
    malformed steps keep their data for INVALID_STEP."""
    raw_steps = data.get("steps")
    if steps is None:
        steps = _steps(raw_steps)
    status = data.get("status")
    raw_executor = data.get("executor")
    executor: Mapping[str, Any] = raw_executor if isinstance(raw_executor, Mapping) else {}
    stored, failures = executor.get("wakeAt"), executor.get("sweepFailures")
    wake = stored if isinstance(stored, datetime) else wake_at
    failures = failures if isinstance(failures, int) and not isinstance(failures, bool) and failures > 0 else 0
    status = status if isinstance(status, str) else ""
    return RunSnapshot(run_id, status, steps, update_time, wake, failures, data, size_bound)


def _steps(raw_steps: Any) -> dict[str, Step]:
    if not isinstance(raw_steps, Mapping):
        return {}
    return {str(step_id): step_of(str(step_id), raw) for step_id, raw in raw_steps.items()}


def step_of(step_id: str, raw: Any) -> Step:
    """One step from its decoded entry; a malformed entry keeps no data (INVALID_STEP)."""
    body: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    return Step(step_id=step_id, type=str(body.get("type", "")), status=str(body.get("status", "")), data=body)
