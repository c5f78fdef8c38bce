"""A local OTLP/HTTP trace receiver: the spans the function exports on the local stack, in memory.

``POST /v1/traces``: an ``ExportTraceServiceRequest`` as ``application/x-protobuf`` or OTLP JSON
(``application/json``, ids in hex), gzip ``Content-Encoding`` or none; answers an empty
``ExportTraceServiceResponse`` in the request's encoding, 400 for a body that does not decode, 415
for another content type, 404 for another path. ``endpoint`` is ``OTEL_EXPORTER_OTLP_ENDPOINT``::

    with OtlpReceiver() as traces:
        ...  # a process exporting to traces.endpoint
        assert traces.wait_for(lambda spans: any(s.name == "claim" for s in spans), timeout=5)
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import sys
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from devstack.local_server import LocalServer

__all__ = ["AttributeValue", "OtlpReceiver", "Span"]

AttributeValue = str | bool | int | float | bytes | list["AttributeValue"] | dict[str, "AttributeValue"] | None
_HEX_ID = {"traceId": 32, "spanId": 16, "parentSpanId": 16}  # OTLP JSON's ids: hex, not protobuf's base64


@dataclass(frozen=True)
class Span:
    """One received span; ids in lower-case hex (``parent_span_id`` is "" for a root), ``kind``
    SERVER/CLIENT/INTERNAL/PRODUCER/CONSUMER/UNSPECIFIED, ``status_code`` UNSET/OK/ERROR."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, AttributeValue]
    status_code: str
    service_name: str


def _value(value: AnyValue) -> AttributeValue:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in value.kvlist_value.values}
    return None if which is None else cast(AttributeValue, getattr(value, which))


def _spans(request: ExportTraceServiceRequest) -> list[Span]:
    out: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
        for span in (span for scope in resource_spans.scope_spans for span in scope.spans):
            ids = (span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex())
            kind = span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_")
            times = (span.start_time_unix_nano, span.end_time_unix_nano)
            attributes = {kv.key: _value(kv.value) for kv in span.attributes}
            status = span.status.StatusCode.Name(span.status.code).removeprefix("STATUS_CODE_")
            service = str(resource.get("service.name") or "")
            out.append(Span(*ids, span.name, kind, *times, attributes, status, service))
    return out


def _hex_ids_to_base64(node: Any) -> Any:
    """OTLP JSON writes trace and span ids in hex; protobuf's JSON mapping reads bytes as base64."""
    if isinstance(node, list):
        return [_hex_ids_to_base64(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _hex_ids_to_base64(value) for key, value in node.items()}
    for key, length in _HEX_ID.items():
        value = out.get(key)
        if isinstance(value, str) and len(value) == length and re.fullmatch(r"[0-9a-fA-F]*", value):
            out[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
    return out


def decode(body: bytes, content_type: str, content_encoding: str = "") -> ExportTraceServiceRequest:
    """The request in ``body``; ValueError when it does not decode, LookupError for another type."""
    media = content_type.split(";")[0].strip().lower()
    if media not in ("application/x-protobuf", "application/json"):
        raise LookupError(f"unsupported content type {content_type!r}")
    request = ExportTraceServiceRequest()
    try:
        raw = gzip.decompress(body) if content_encoding.strip().lower() == "gzip" else body
        if media == "application/x-protobuf":
            request.ParseFromString(raw)
        else:
            parsed = json.loads(raw)
            if not isinstance(parsed, dict):
                raise ValueError("not a JSON object")
            json_format.ParseDict(_hex_ids_to_base64(parsed), request, ignore_unknown_fields=True)
    except (OSError, EOFError, zlib.error, DecodeError, ValueError, json_format.ParseError) as exc:
        raise ValueError(
            f"not an ExportTraceServiceRequest ({media}, {content_encoding or 'identity'}): {exc}"
        ) from exc
    return request


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], receiver: OtlpReceiver) -> None:
        super().__init__(addr, _Handler)
        self.receiver = receiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otlp-receiver/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def _send(self, status: int, content_type: str, payload: bytes) -> None:
        self.send_response(status)
        for key, value in (("Content-Type", content_type), ("Content-Length", str(len(payload)))):
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = self.headers.get("Content-Type", "")
        if self.path.split("?")[0] != "/v1/traces":
            self._send(404, "text/plain", f"no route {self.path}".encode())
            return
        try:
            request = decode(body, content_type, self.headers.get("Content-Encoding", ""))
        except (ValueError, LookupError) as exc:
            self._send(400 if isinstance(exc, ValueError) else 415, "text/plain", str(exc).encode())
            return
        cast(_Server, self.server).receiver._add(_spans(request))
        if content_type.split(";")[0].strip().lower() == "application/json":
            self._send(200, "application/json", json_format.MessageToJson(ExportTraceServiceResponse()).encode())
        else:
            self._send(200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString())


class OtlpReceiver(LocalServer):
    """In-process OTLP/HTTP trace endpoint; see the module docstring."""

    thread_name = "otlp-receiver"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._cond = threading.Condition()
        self._spans: list[Span] = []

    def _make_server(self) -> _Server:
        return _Server((self.host, self.port), self)

    @property
    def endpoint(self) -> str:
        """Value for ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the exporter appends ``/v1/traces``)."""
        return self.url

    def spans(self) -> list[Span]:
        """Every span received since the start or the last ``reset``, in arrival order."""
        with self._cond:
            return list(self._spans)

    def reset(self) -> None:
        with self._cond:
            self._spans.clear()

    def wait_for(self, predicate: Callable[[list[Span]], bool], timeout: float = 10.0) -> bool:
        """True as soon as ``predicate(spans())`` holds; False after ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: predicate(list(self._spans)), timeout)

    def _add(self, spans: list[Span]) -> None:
        with self._cond:
            self._spans.extend(spans)
            self._cond.notify_all()
