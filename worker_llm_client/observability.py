"""Structured logs in Cloud Logging's JSON format: configured once, context bound per event.

Every line is one JSON object on stdout with ``severity``, ``message`` (the event name),
``timestamp`` and, when known, ``runId``/``stepId``/``attempt``/``eventId``, the same ids as
``logging.googleapis.com/labels`` and ``logging.googleapis.com/trace`` from the event's
``traceparent``. Callers log ids, codes, counts and durations only: never secrets, prompt text,
variable values or model output.
"""

from __future__ import annotations

import json
import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

LABEL_KEYS = ("runId", "stepId")
_SEVERITY = {
    "debug": "DEBUG",
    "info": "INFO",
    "warning": "WARNING",
    "warn": "WARNING",
    "error": "ERROR",
    "exception": "ERROR",
    "critical": "CRITICAL",
}
_configured = False


def _cloud_logging_fields(_: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["severity"] = _SEVERITY.get(method, "DEFAULT")
    event["message"] = event.pop("event", "")
    labels = {key: str(event[key]) for key in LABEL_KEYS if event.get(key) is not None}
    if labels:
        event["logging.googleapis.com/labels"] = labels
    return event


def configure_logging(level: str = "INFO") -> None:
    """Idempotent; the first call wins (one configuration per instance)."""
    global _configured
    if _configured:
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            structlog.processors.format_exc_info,
            _cloud_logging_fields,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping().get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(),  # stdout, resolved per logger
        cache_logger_on_first_use=False,
    )
    _configured = True


def _dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def trace_resource(project: str, traceparent: str | None) -> str | None:
    """``projects/P/traces/T`` from a W3C ``traceparent`` (``00-<trace>-<span>-<flags>``)."""
    if not project or not traceparent:
        return None
    parts = traceparent.split("-")
    if len(parts) < 3 or len(parts[1]) != 32:
        return None
    return f"projects/{project}/traces/{parts[1]}"


def bind_event(event_id: str | None, run_id: str | None, trace: str | None) -> None:
    structlog.contextvars.clear_contextvars()
    context: dict[str, Any] = {"eventId": event_id, "runId": run_id}
    if trace:
        context["logging.googleapis.com/trace"] = trace
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})


def bind_step(step_id: str, attempt: int) -> None:
    structlog.contextvars.bind_contextvars(stepId=step_id, attempt=attempt)


def get_logger() -> Any:
    return structlog.get_logger()
