"""Structured logs in Cloud Logging's JSON format: configured once, context bound per event.

Every line is one JSON object on stdout with ``severity``, ``message`` (the event name), ``time``
(RFC 3339, the key Cloud Logging takes as the entry's timestamp) and, when known,
``runId``/``stepId``/``attempt``/``eventId``, the same ids as ``logging.googleapis.com/labels``, and
``logging.googleapis.com/trace``/``spanId``/``trace_sampled``: the request's trace, and the span
the line was written in (``tracing.py``; the caller's span when traces are not exported). Callers
log ids, codes, counts and durations only: never secrets, prompt text, variable values or model
output.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from structlog.typing import FilteringBoundLogger

from worker_llm_client.errors import UnhandledError, WorkerError

if TYPE_CHECKING:
    from worker_llm_client.core.trace_context import TraceParent

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
MAX_TRACEBACK_FRAMES = 40  # the innermost ones; a RecursionError has a thousand
MAX_CHAINED = 5


def safe_exception(exc: BaseException) -> str:
    """A traceback that cannot leak: frames (file, line, function) and exception types only.

    A foreign exception's text may quote what it was given (pydantic prints ``input_value=...``,
    json and jinja2 quote the document): only our own ``WorkerError`` messages, which are written
    to be safe, are kept.
    """
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(parts) < MAX_CHAINED:
        seen.add(id(current))
        name = f"{type(current).__module__}.{type(current).__qualname__}"
        text = f"{name}: {current}" if isinstance(current, WorkerError) else f"{name} (message withheld)"
        parts.append(_frames(current.__traceback__) + text)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return "\nwhich was raised while handling, or directly caused by:\n".join(reversed(parts))


def _frames(tb: TracebackType | None) -> str:
    frames = traceback.extract_tb(tb)
    cut = len(frames) - MAX_TRACEBACK_FRAMES
    shown = frames[cut:] if cut > 0 else frames
    lines = [f'  File "{f.filename}", line {f.lineno}, in {f.name}' for f in shown]
    head = "Traceback (most recent call last):\n" + (f"  ... {cut} frames above left out\n" if cut > 0 else "")
    return head + "".join(line + "\n" for line in lines)


def _safe_exc_info(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog's ``format_exc_info``, rendering tracebacks with ``safe_exception``."""
    exc_info = event.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        exc = exc_info if isinstance(exc_info, BaseException) else exc_info[1]
        if exc is not None:
            event["exception"] = safe_exception(exc)
            event.setdefault("errorType", type(exc).__name__)
    return event


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
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
            _safe_exc_info,
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


TRACE_KEY = "logging.googleapis.com/trace"
SPAN_KEY = "logging.googleapis.com/spanId"
SAMPLED_KEY = "logging.googleapis.com/trace_sampled"


def trace_fields(project: str, trace_id: str, span_id: str, sampled: bool) -> dict[str, Any]:
    """The keys Cloud Logging correlates a line with a trace and span by."""
    trace = {TRACE_KEY: f"projects/{project}/traces/{trace_id}"} if project else {}
    return trace | {SPAN_KEY: span_id, SAMPLED_KEY: sampled}


def bind_event(event_id: str | None, run_id: str | None, trace: TraceParent | None, project: str = "") -> None:
    """A new event's context: every other key of the previous one is dropped."""
    structlog.contextvars.clear_contextvars()
    context: dict[str, Any] = {"eventId": event_id, "runId": run_id}
    if trace is not None:
        context |= trace_fields(project, trace.trace_id, trace.span_id, trace.sampled)
    structlog.contextvars.bind_contextvars(**{k: v for k, v in context.items() if v is not None})


def bind_run(run_id: str) -> None:
    """The run a sweep's thread works on, keeping the sweep's trace."""
    structlog.contextvars.unbind_contextvars("stepId", "attempt")
    structlog.contextvars.bind_contextvars(runId=run_id)


def bind_step(step_id: str, attempt: int) -> None:
    structlog.contextvars.bind_contextvars(stepId=step_id, attempt=attempt)


Logger = FilteringBoundLogger  # what ``get_logger`` returns: info/warning/error(event, **fields)


def get_logger() -> Logger:
    logger: Logger = structlog.get_logger()
    return logger


@contextmanager
def failures_logged_safely(event: str) -> Iterator[None]:
    """For an entry point: whatever escapes reaches the framework (which answers 5xx and logs the
    exception with its causes) without any foreign exception's text. Our own errors pass with their
    causes cut off; anything else is logged here as ``event`` with a safe traceback and replaced by
    an ``UnhandledError`` that names its type."""
    try:
        yield
    except WorkerError as error:
        error.__cause__, error.__suppress_context__ = None, True
        raise
    except Exception as exc:
        get_logger().error(event, exc_info=exc)
        raise UnhandledError(f"{type(exc).__name__} (logged as {event})") from None
