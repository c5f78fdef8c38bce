"""``status RUN_ID``: a run's steps as rows, shown as a table (UTC, clipped) or as one JSON document.

A row holds what an operator needs and nothing a step was given: status, attempt out of
``maxAttempts``, timings, ``error``, ``outputs.gcs_uri``, tokens and ``outputs.costUsd``. Never
``inputs`` (nothing of them is read), never a report.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker_llm_client.core.step_selection import dependencies_met
from worker_llm_client.core.transitions import max_attempts, timestamp_at
from worker_llm_client.models import LLM_REPORT, RUN_CANCELLED, RunSnapshot, Step, StepStatus
from worker_llm_client.operations import MISSING, rfc3339

MESSAGE_WIDTH = 60  # an error's "code: message" in the table; --json has it whole


@dataclass(frozen=True)
class StepRow:
    step_id: str
    type: str
    status: str
    attempt: int
    max_attempts: int | None  # None: malformed (the step fails INVALID_STEP), or not an LLM_REPORT step
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None  # finished - started, or now - started while RUNNING
    retry_at: datetime | None
    lease_expires_at: datetime | None
    error: Mapping[str, Any] | None
    artifact: str | None
    tokens: Mapping[str, int | None]  # total, prompt, output
    cost_usd: float | None
    redrive: Mapping[str, Any] | None


def step_rows(run: RunSnapshot, now: datetime) -> list[StepRow]:
    return [step_row(run.steps[step_id], now) for step_id in sorted(run.steps)]


def step_row(step: Step, now: datetime) -> StepRow:
    outputs = _mapping(step.data.get("outputs"))
    usage = _mapping(outputs.get("usage"))
    started, finished = timestamp_at(step, "startedAt"), timestamp_at(step, "finishedAt")
    end = finished or (now if step.status == StepStatus.RUNNING else None)
    artifact = outputs.get("gcs_uri")
    return StepRow(
        step_id=step.step_id,
        type=step.type,
        status=step.status,
        attempt=step.attempt,
        max_attempts=max_attempts(step) if step.type == LLM_REPORT else None,
        started_at=started,
        finished_at=finished,
        duration_seconds=max(0.0, (end - started).total_seconds()) if started and end else None,
        retry_at=timestamp_at(step, "retryAt"),
        lease_expires_at=timestamp_at(step, "claim", "leaseExpiresAt"),
        error=_mapping(step.data.get("error")) or None,
        artifact=artifact if isinstance(artifact, str) else None,
        tokens={name: _count(usage, f"{name}Tokens") for name in ("total", "prompt", "output")},
        cost_usd=_number(outputs.get("costUsd")),
        redrive=_mapping(step.data.get("redrive")) or None,
    )


def still_active(run: RunSnapshot) -> bool:
    """A step is RUNNING, or an LLM_REPORT step is READY with its dependencies met (it will be claimed)."""
    claimable = run.status != RUN_CANCELLED
    return any(
        step.status == StepStatus.RUNNING
        or (
            claimable
            and step.type == LLM_REPORT
            and step.status == StepStatus.READY
            and dependencies_met(step, run.steps)
        )
        for step in run.steps.values()
    )


COLUMNS: tuple[tuple[str, Callable[[StepRow], str]], ...] = (
    ("STEP", lambda r: r.step_id),
    ("TYPE", lambda r: r.type or MISSING),
    ("STATUS", lambda r: r.status or MISSING),
    ("ATTEMPT", lambda r: attempts(r)),
    ("STARTED", lambda r: _time(r.started_at)),
    ("FINISHED", lambda r: _time(r.finished_at)),
    ("DURATION", lambda r: duration(r.duration_seconds)),
    ("RETRY_AT", lambda r: _time(r.retry_at)),
    ("TOKENS", lambda r: tokens(r.tokens)),
    ("COST", lambda r: f"${r.cost_usd:.6f}" if r.cost_usd is not None else MISSING),
    ("ERROR", lambda r: error_cell(r.error)),
    ("ARTIFACT", lambda r: r.artifact or MISSING),
)


def table(run: RunSnapshot, rows: list[StepRow], now: datetime) -> str:
    head = f"run {run.run_id}  status {run.status or MISSING}  wakeAt {_time(run.wake_at)}  as of {_time(now)} (UTC)"
    if not rows:
        return f"{head}\n(no steps)"
    cells = [[header for header, _ in COLUMNS]] + [[cell(row) for _, cell in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip() for line in cells]
    return "\n".join([head, *lines])


def as_json(run: RunSnapshot, rows: list[StepRow], now: datetime) -> dict[str, Any]:
    """The run and every step as plain values; timestamps RFC 3339 UTC, the error whole."""
    return {
        "runId": run.run_id,
        "status": run.status or None,
        "wakeAt": _plain(run.wake_at),
        "updateTime": _plain(run.update_time),
        "asOf": rfc3339(now),
        "steps": [_step_json(row) for row in rows],
    }


def _step_json(row: StepRow) -> dict[str, Any]:
    return {
        "id": row.step_id,
        "type": row.type or None,
        "status": row.status or None,
        "attempt": row.attempt,
        "maxAttempts": row.max_attempts,
        "startedAt": _plain(row.started_at),
        "finishedAt": _plain(row.finished_at),
        "durationSeconds": row.duration_seconds,
        "retryAt": _plain(row.retry_at),
        "leaseExpiresAt": _plain(row.lease_expires_at),
        "error": _plain(row.error),
        "artifact": row.artifact,
        "tokens": dict(row.tokens),
        "costUsd": row.cost_usd,
        "redrive": _plain(row.redrive),
    }


def watch(
    read: Callable[[], RunSnapshot],
    show: Callable[[RunSnapshot], None],
    interval: float,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> bool:
    """Show the run every ``interval`` seconds until nothing is active (True) or ``timeout`` passed (False)."""
    deadline = None if timeout is None else monotonic() + timeout
    while True:
        run = read()
        show(run)
        if not still_active(run):
            return True
        left = math.inf if deadline is None else deadline - monotonic()
        if left <= 0:
            return False
        sleep(min(interval, left))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def attempts(row: StepRow) -> str:
    """``attempt/maxAttempts`` of an LLM_REPORT step (``?`` for a malformed budget); ``—`` for another type."""
    if row.type != LLM_REPORT:
        return MISSING
    return f"{row.attempt}/{row.max_attempts if row.max_attempts is not None else '?'}"


def tokens(counts: Mapping[str, int | None]) -> str:
    if counts.get("total") is not None:
        return str(counts["total"])
    prompt, output = counts.get("prompt"), counts.get("output")
    if prompt is None and output is None:
        return MISSING
    return f"{prompt if prompt is not None else '?'}/{output if output is not None else '?'}"


def error_cell(error: Mapping[str, Any] | None) -> str:
    if not error:
        return MISSING
    text = re.sub(r"\s+", " ", f"{error.get('code', '?')}: {error.get('message', '')}").strip()
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 1] + "…"


def _time(value: datetime | None) -> str:
    return rfc3339(value.replace(microsecond=0)) if value is not None else MISSING


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _count(usage: Mapping[str, Any], key: str) -> int | None:
    value = usage.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)
