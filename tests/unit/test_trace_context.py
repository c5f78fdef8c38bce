"""The trace an HTTP request carries: W3C traceparent, else X-Cloud-Trace-Context, else a fallback."""

from __future__ import annotations

import pytest

from worker_llm_client.core.trace_context import TraceParent, incoming_trace

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("headers", "fallback", "expected"),
    [
        ({"traceparent": f"00-{TRACE}-{SPAN}-01"}, None, TraceParent(TRACE, SPAN, True)),
        ({"traceparent": f"00-{TRACE.upper()}-{SPAN}-00"}, None, TraceParent(TRACE, SPAN, False)),
        ({"traceparent": f"01-{TRACE}-{SPAN}-03-future"}, None, TraceParent(TRACE, SPAN, True)),  # later versions
        ({"traceparent": f"00-{TRACE}-{SPAN}-01-extra"}, None, None),  # version 00 has no more fields
        ({"traceparent": f"ff-{TRACE}-{SPAN}-01"}, None, None),
        ({"traceparent": f"00-{'0' * 32}-{SPAN}-01"}, None, None),
        ({"traceparent": f"00-{TRACE}-{'0' * 16}-01"}, None, None),
        ({"traceparent": "garbage"}, None, None),
        ({"X-Cloud-Trace-Context": f"{TRACE}/{int(SPAN, 16)};o=1"}, None, TraceParent(TRACE, SPAN, True)),
        ({"X-Cloud-Trace-Context": f"{TRACE}/12;o=0"}, None, TraceParent(TRACE, f"{12:016x}", False)),
        ({"X-Cloud-Trace-Context": TRACE}, None, TraceParent(TRACE, f"{1:016x}", False)),  # no span: still correlates
        ({"X-Cloud-Trace-Context": f"{TRACE}/{2**64}"}, None, TraceParent(TRACE, f"{1:016x}", False)),
        ({"X-Cloud-Trace-Context": f"{'0' * 32}/1;o=1"}, None, None),
        ({"X-Cloud-Trace-Context": "nope/1"}, None, None),
        (
            {"traceparent": "garbage", "X-Cloud-Trace-Context": f"{TRACE}/1;o=1"},
            None,
            TraceParent(TRACE, f"{1:016x}", True),
        ),
        ({}, f"00-{TRACE}-{SPAN}-01", TraceParent(TRACE, SPAN, True)),
        ({}, 42, None),
        (None, f"00-{TRACE}-{SPAN}-01", TraceParent(TRACE, SPAN, True)),  # no request at hand
        ({"traceparent": 7}, None, None),
        ({"X-Cloud-Trace-Context": 7}, None, None),
    ],
)
def test_the_trace_comes_from_the_request(headers: object, fallback: object, expected: TraceParent | None) -> None:
    assert incoming_trace(headers, fallback) == expected


def test_a_trace_parent_is_written_back_as_a_header() -> None:
    assert TraceParent(TRACE, SPAN, True).header() == f"00-{TRACE}-{SPAN}-01"
    assert TraceParent(TRACE, SPAN, False).header() == f"00-{TRACE}-{SPAN}-00"
