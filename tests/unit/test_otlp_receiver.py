"""The local OTLP receiver, driven by the real OpenTelemetry SDK exporter and by raw HTTP."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from devstack.otlp_receiver import OtlpReceiver, Span

TRACE_ID = "5b8efff798038103d269b633813fc60c"
REMOTE_SPAN = "eee19b7ec3c1b174"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as started:
        yield started


def _traced(exporter: Any) -> None:
    """root (SERVER, continuing a remote parent) -> call (CLIENT, failed) -> write (INTERNAL)."""
    provider = TracerProvider(resource=Resource({"service.name": "svc-under-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    sampled = trace.TraceFlags(trace.TraceFlags.SAMPLED)
    remote = trace.SpanContext(int(TRACE_ID, 16), int(REMOTE_SPAN, 16), is_remote=True, trace_flags=sampled)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    with tracer.start_as_current_span("root", context=parent, kind=trace.SpanKind.SERVER):
        attributes = {"s": "x", "i": 7, "f": 0.25, "b": True, "list": ["STOP", "MAX_TOKENS"], "ints": [1, 2]}
        with tracer.start_as_current_span("call", kind=trace.SpanKind.CLIENT, attributes=attributes) as call:
            call.set_status(trace.Status(trace.StatusCode.ERROR))
            with tracer.start_as_current_span("write"):
                pass
    provider.shutdown()


def _by_name(spans: list[Span]) -> dict[str, Span]:
    return {span.name: span for span in spans}


def _assert_the_traced_tree(spans: list[Span]) -> None:
    named = _by_name(spans)
    assert sorted(named) == ["call", "root", "write"]
    root, call, write = named["root"], named["call"], named["write"]
    assert {span.trace_id for span in spans} == {TRACE_ID}
    assert (root.parent_span_id, call.parent_span_id, write.parent_span_id) == (REMOTE_SPAN, root.span_id, call.span_id)
    assert (root.kind, call.kind, write.kind) == ("SERVER", "CLIENT", "INTERNAL")
    assert call.attributes == {"s": "x", "i": 7, "f": 0.25, "b": True, "list": ["STOP", "MAX_TOKENS"], "ints": [1, 2]}
    assert (root.status_code, call.status_code) == ("UNSET", "ERROR")
    assert {span.service_name for span in spans} == {"svc-under-test"}
    assert root.start_ns <= call.start_ns <= write.start_ns <= write.end_ns <= call.end_ns <= root.end_ns
    assert all(len(span.span_id) == 16 for span in spans)


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip], ids=["plain", "gzip"])
def test_the_sdk_exporter_delivers_spans_with_their_parents_kinds_and_attributes(
    receiver: OtlpReceiver, compression: Compression
) -> None:
    _traced(OTLPSpanExporter(endpoint=f"{receiver.endpoint}/v1/traces", compression=compression))

    assert receiver.wait_for(lambda spans: len(spans) == 3, timeout=5)
    _assert_the_traced_tree(receiver.spans())


def _sdk_spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    _traced(memory)
    return list(memory.get_finished_spans())


def _post(receiver: OtlpReceiver, body: bytes, content_type: str, path: str = "/v1/traces", **headers: str) -> Any:
    sent = {"Content-Type": content_type, **headers}
    request = urllib.request.Request(f"{receiver.endpoint}{path}", data=body, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def test_a_gzip_body_is_decoded(receiver: OtlpReceiver) -> None:
    body = gzip.compress(encode_spans(_sdk_spans()).SerializeToString())

    status, content_type, answer = _post(receiver, body, "application/x-protobuf", **{"Content-Encoding": "gzip"})

    assert (status, content_type) == (200, "application/x-protobuf")
    assert ExportTraceServiceResponse.FromString(answer) == ExportTraceServiceResponse()
    _assert_the_traced_tree(receiver.spans())


def test_an_otlp_json_body_is_decoded_with_its_hex_ids(receiver: OtlpReceiver) -> None:
    span = {
        "traceId": TRACE_ID,
        "spanId": "051581bf3cb55c13",
        "parentSpanId": REMOTE_SPAN,
        "name": "generate_content gemini-2.5-flash",
        "kind": 3,
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "attributes": [
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
            {"key": "flow.cost_usd", "value": {"doubleValue": 0.5}},
            {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "STOP"}]}}},
        ],
        "status": {"code": 2},
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "json-svc"}}]}
    body = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]}]}

    status, content_type, answer = _post(receiver, json.dumps(body).encode(), "application/json")

    assert (status, content_type, json.loads(answer)) == (200, "application/json", {})
    assert receiver.spans() == [
        Span(
            trace_id=TRACE_ID,
            span_id="051581bf3cb55c13",
            parent_span_id=REMOTE_SPAN,
            name="generate_content gemini-2.5-flash",
            kind="CLIENT",
            start_ns=1544712660000000000,
            end_ns=1544712661000000000,
            attributes={
                "gen_ai.usage.input_tokens": 42,
                "flow.cost_usd": 0.5,
                "gen_ai.response.finish_reasons": ["STOP"],
            },
            status_code="ERROR",
            service_name="json-svc",
        )
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "headers", "status"),
    [
        pytest.param(b"\xff\xff\xff\xff", "application/x-protobuf", {}, 400, id="not-protobuf"),
        pytest.param(b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400, id="not-gzip"),
        pytest.param(b"{not json", "application/json", {}, 400, id="not-json"),
        pytest.param(b"[1, 2]", "application/json", {}, 400, id="json-not-an-object"),
        pytest.param(b'{"resourceSpans": 3}', "application/json", {}, 400, id="json-not-otlp"),
        pytest.param(b"{}", "text/plain", {}, 415, id="other-content-type"),
    ],
)
def test_a_body_that_does_not_decode_is_refused_and_stores_nothing(
    receiver: OtlpReceiver, body: bytes, content_type: str, headers: dict[str, str], status: int
) -> None:
    assert _post(receiver, body, content_type, **headers)[0] == status
    assert receiver.spans() == []


def test_another_path_is_not_found(receiver: OtlpReceiver) -> None:
    assert _post(receiver, b"", "application/x-protobuf", path="/v1/metrics")[0] == 404


def test_wait_for_returns_once_the_spans_arrive_and_reset_forgets_them(receiver: OtlpReceiver) -> None:
    assert receiver.wait_for(lambda spans: bool(spans), timeout=0.05) is False

    _post(receiver, encode_spans(_sdk_spans()).SerializeToString(), "application/x-protobuf")

    assert receiver.wait_for(lambda spans: {s.name for s in spans} == {"root", "call", "write"}, timeout=1)
    receiver.reset()
    assert receiver.spans() == []
