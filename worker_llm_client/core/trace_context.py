"""The trace an HTTP request carries: W3C ``traceparent``, else Google's ``X-Cloud-Trace-Context``.

Functions-framework does not copy the request's ``traceparent`` into the CloudEvent, so the entry
points read the headers; a ``traceparent`` CloudEvent extension is the last resort. Pure.
"""

from __future__ import annotations

import re
from typing import NamedTuple

# Patterns, not compiled objects: this module is on the no-op path, where import time is cold
# start; ``re`` compiles each on first use and caches it.
_TRACEPARENT = r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$"
_CLOUD_TRACE = r"^([0-9a-fA-F]{32})(?:/([0-9]{1,20}))?(?:;o=([01]))?$"
_INVALID_TRACE, _INVALID_SPAN = "0" * 32, "0" * 16


class TraceParent(NamedTuple):  # not a frozen dataclass: that costs about a millisecond to import
    """The caller's span: 32 hex digits of trace, 16 of span, and whether the caller samples it."""

    trace_id: str
    span_id: str
    sampled: bool

    def header(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: object) -> TraceParent | None:
    """``00-<trace>-<span>-<flags>``; None for anything else (version ff, all-zero ids)."""
    if not isinstance(value, str):
        return None
    match = re.match(_TRACEPARENT, value.strip().lower())
    if match is None or match.group(1) == "ff":
        return None
    version, trace_id, span_id, flags = match.groups()
    if trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN or (version == "00" and len(value.strip()) != 55):
        return None
    return TraceParent(trace_id, span_id, bool(int(flags, 16) & 1))


def parse_cloud_trace_context(value: object) -> TraceParent | None:
    """``TRACE_ID/SPAN_ID;o=OPTIONS`` (the span id in decimal); None for anything else."""
    if not isinstance(value, str):
        return None
    match = re.match(_CLOUD_TRACE, value.strip())
    if match is None or match.group(1) == _INVALID_TRACE:
        return None
    trace_id, span, options = match.groups()
    span_id = int(span or 0)
    if not 0 < span_id < 2**64:
        span_id = 1  # no usable span: the trace still correlates
    return TraceParent(trace_id.lower(), f"{span_id:016x}", options == "1")


def incoming_trace(headers: object, fallback: object = None) -> TraceParent | None:
    """The request's trace: its ``traceparent`` header, else ``X-Cloud-Trace-Context``, else
    ``fallback`` (a ``traceparent`` value, e.g. the CloudEvent extension). ``headers``: anything
    with a ``get`` (a mapping, werkzeug's case-insensitive headers)."""
    get = getattr(headers, "get", None)
    if not callable(get):
        return parse_traceparent(fallback)
    return (
        parse_traceparent(get("traceparent"))
        or parse_cloud_trace_context(get("X-Cloud-Trace-Context"))
        or parse_traceparent(fallback)
    )
