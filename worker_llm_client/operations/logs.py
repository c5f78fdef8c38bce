"""``logs RUN_ID [--step S]``: the Cloud Logging filter of a run (or one step), and its lines via ``gcloud``.

The function's log lines carry ``runId``/``stepId`` in their JSON payload (``observability.py``),
so ``jsonPayload.runId="RUN"`` finds them; ids are quoted for the logging query language. ``gcloud``
is run with ``--freshness=30d`` (its default looks back one day only) and in ascending time order.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from collections.abc import Mapping
from typing import Any

from worker_llm_client.operations import MISSING, OperatorError

FRESHNESS = "30d"
SEVERITY_WIDTH = 8


def quote(value: str) -> str:
    """A string literal of the logging query language: ``\\`` and ``"`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def log_filter(run_id: str, step_id: str | None = None) -> str:
    text = f"jsonPayload.runId={quote(run_id)}"
    return text if step_id is None else f"{text} AND jsonPayload.stepId={quote(step_id)}"


def gcloud_args(query: str, project: str) -> list[str]:
    """What follows ``gcloud``: ``logging read FILTER --project=P --order=asc --format=json --freshness=30d``."""
    options = [f"--project={project}", "--order=asc", "--format=json", f"--freshness={FRESHNESS}"]
    return ["logging", "read", query, *options]


def paste_line(query: str, project: str) -> str:
    """The same command, quoted for a POSIX shell."""
    return shlex.join(["gcloud", *gcloud_args(query, project)])


def read_entries(gcloud: str, query: str, project: str) -> list[Mapping[str, Any]]:
    """The entries ``gcloud logging read`` returns; ``OperatorError`` (1) with its stderr's first line if it fails."""
    try:
        argv = [gcloud, *gcloud_args(query, project)]  # no shell; the filter is one argv item, after "read"
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603  # nosec B603  # argv list
    except OSError as exc:
        raise OperatorError(f"gcloud could not be run: {exc}", exit_code=1) from exc
    if done.returncode != 0:
        first = next((line.strip() for line in done.stderr.splitlines() if line.strip()), f"exit {done.returncode}")
        raise OperatorError(f"gcloud failed: {first[:500]}", exit_code=1)
    try:
        entries = json.loads(done.stdout or "[]")
    except ValueError as exc:
        raise OperatorError("gcloud's answer is not JSON", exit_code=1) from exc
    if not isinstance(entries, list):
        raise OperatorError("gcloud's answer is not a list of log entries", exit_code=1)
    return [entry for entry in entries if isinstance(entry, Mapping)]


def entry_line(entry: Mapping[str, Any]) -> str:
    """``time  severity  message  stepId=S attempt=N code=C``; missing fields are left out (or ``—``)."""
    raw_payload = entry.get("jsonPayload")
    payload: Mapping[str, Any] = raw_payload if isinstance(raw_payload, Mapping) else {}
    when = entry.get("timestamp") or payload.get("timestamp") or payload.get("time") or MISSING
    severity = entry.get("severity") or payload.get("severity") or "DEFAULT"
    message = (str(payload.get("message") or entry.get("textPayload") or "").splitlines() or [MISSING])[0]
    extras = [f"{key}={payload[key]}" for key in ("stepId", "attempt", "code") if payload.get(key) is not None]
    line = f"{when}  {str(severity).ljust(SEVERITY_WIDTH)}  {message}"
    return f"{line}  {' '.join(extras)}" if extras else line
