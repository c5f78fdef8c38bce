"""Operator commands' logic: ``status``, ``logs`` and ``redrive`` of a run (``cli.py`` wires them).

``status.py`` turns a run into rows, a table or JSON; ``logs.py`` builds the Cloud Logging filter
and reads it through ``gcloud``; ``redrive.py`` decides and writes an operator's re-drive;
``store.py`` opens Firestore and reads a run. The Firestore SDK is imported inside functions only,
so ``python -m worker_llm_client --help`` stays instant. Nothing here prints prompt text, ``vars``
or model output: a step is shown by its status, attempts, timings, error, artifact, tokens and cost.
"""

from __future__ import annotations

from datetime import UTC, datetime

MISSING = "—"


class OperatorError(Exception):
    """A command stops: ``message`` goes to stderr, ``exit_code`` is 1 (failure) or 2 (bad input)."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message, self.exit_code = message, exit_code


def rfc3339(value: datetime) -> str:
    """``2026-11-22T12:00:03.250000Z``: UTC whatever the local timezone (naive values are UTC)."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
