"""Traces: one per event or sweep that does work, continuing the caller's trace.

Spans: the root (``handle_flow_run_event`` / ``sweep_flow_runs``), ``claim``, one ``step`` per
executed step with ``catalog.resolve``, one ``generate_content <model>`` per model request (the
OpenTelemetry GenAI conventions) and ``artifact.write`` under it, and ``finalize``. Attributes are
ids, codes, counts and costs: never prompt text, variable values or model output, and never an
exception's text (its type only).

The exporter is the standard ``OTEL_TRACES_EXPORTER`` (``config.py``). With ``none`` a span is a
no-op and the OpenTelemetry SDK is never imported; otherwise it is loaded when the first span of
the instance starts (a no-op event starts none). Spans go through a batch processor that the root
flushes before the invocation returns: Cloud Run throttles the CPU after the response.
Every log line written inside a span carries its id (``logging.googleapis.com/spanId``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import structlog

from worker_llm_client.config import TracesExporter, settings
from worker_llm_client.core.trace_context import TraceParent
from worker_llm_client.observability import get_logger, trace_fields

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanKind, Tracer

AttributeValue = str | bool | int | float | Sequence[str] | None
FLUSH_TIMEOUT_MILLIS = 5_000
SERVICE_NAME = "worker-llm-client"
_lock = threading.Lock()
_installed: dict[str, Any] = {}  # "provider", "tracer": built once per instance, or installed by tests


class SpanHandle:
    """What the code says about its span; a no-op when traces are off."""

    def __init__(self, span: Span | None = None) -> None:
        self._span = span

    def set(self, **attributes: AttributeValue) -> None:
        if self._span is not None:
            self._span.set_attributes({key: value for key, value in attributes.items() if value is not None})

    def fail(self, code: str) -> None:
        """The span ended in ``code`` (an error code or an exception's type name, nothing else)."""
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_attribute("error.type", code)
            self._span.set_status(Status(StatusCode.ERROR))


NOOP = SpanHandle()


@contextmanager
def root(
    name: str, incoming: TraceParent | None, attributes: Mapping[str, AttributeValue] | None = None
) -> Iterator[SpanHandle]:
    """The invocation's span, a child of the caller's; every span is exported before it returns."""
    tracer = _tracer()
    if tracer is None:
        yield NOOP
        return
    from opentelemetry import trace

    parent = None
    if incoming is not None:
        remote = trace.SpanContext(
            int(incoming.trace_id, 16),
            int(incoming.span_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED if incoming.sampled else 0),
        )
        parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    try:
        with _started(tracer, name, trace.SpanKind.SERVER, attributes or {}, parent) as handle:
            yield handle
    finally:
        flush()


@contextmanager
def span(
    name: str, attributes: Mapping[str, AttributeValue] | None = None, *, client: bool = False
) -> Iterator[SpanHandle]:
    """A child of the current span (``client``: a call to another service, e.g. the model)."""
    tracer = _tracer()
    if tracer is None:
        yield NOOP
        return
    from opentelemetry.trace import SpanKind

    with _started(tracer, name, SpanKind.CLIENT if client else SpanKind.INTERNAL, attributes or {}) as handle:
        yield handle


@contextmanager
def _started(
    tracer: Tracer, name: str, kind: SpanKind, attributes: Mapping[str, AttributeValue], parent: Context | None = None
) -> Iterator[SpanHandle]:
    """A started span, current for the block, its ids on every log line written in it. An
    exception marks it failed with the exception's type: its text may quote what it was given."""
    clean = {key: value for key, value in attributes.items() if value is not None}
    with tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=clean, record_exception=False, set_status_on_exception=False
    ) as current:
        ids = current.get_span_context()
        fields = trace_fields(
            settings().project, f"{ids.trace_id:032x}", f"{ids.span_id:016x}", ids.trace_flags.sampled
        )
        tokens = structlog.contextvars.bind_contextvars(**fields)
        handle = SpanHandle(current)
        try:
            yield handle
        except BaseException as exc:
            handle.fail(getattr(exc, "code", None) or type(exc).__name__)
            raise
        finally:
            structlog.contextvars.reset_contextvars(**tokens)


def flush() -> None:
    provider: TracerProvider | None = _installed.get("provider")
    if provider is not None:
        provider.force_flush(FLUSH_TIMEOUT_MILLIS)


def install(provider: TracerProvider | None) -> None:
    """Use ``provider`` for this instance's spans (tests: an in-memory exporter); None: traces off
    until the next ``install``. Replaces what ``OTEL_TRACES_EXPORTER`` chose."""
    with _lock:
        _installed.clear()
        _installed["provider"] = provider
        _installed["tracer"] = provider.get_tracer("worker_llm_client") if provider is not None else None


def _tracer() -> Tracer | None:
    if "tracer" in _installed:
        tracer: Tracer | None = _installed["tracer"]
        return tracer
    exporter = settings().traces_exporter
    if exporter == "none":
        return None
    with _lock:
        if "tracer" not in _installed:
            try:
                provider = _provider(exporter)
            except Exception as exc:  # traces are a view of the work: never a reason for it to fail
                get_logger().warning("tracing.unavailable", exporter=exporter, errorType=type(exc).__name__)
                _installed.update(provider=None, tracer=None)
                return None
            _installed.update(provider=provider, tracer=provider.get_tracer("worker_llm_client"))
        built: Tracer | None = _installed["tracer"]
        return built


def _provider(exporter: TracesExporter) -> TracerProvider:
    """The SDK, loaded now: a provider exporting in batches to ``exporter``. The standard
    ``OTEL_*`` settings (endpoint, headers, sampler, resource attributes) are the SDK's to read."""
    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        span_exporter = OTLPSpanExporter()
    elif exporter == "gcp_trace":
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        span_exporter = CloudTraceSpanExporter(project_id=settings().project or None)  # type: ignore[no-untyped-call]
    else:
        span_exporter = ConsoleSpanExporter()
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set
    if str(resource.attributes.get(SERVICE_NAME_KEY, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME_KEY: SERVICE_NAME}))
    provider = SdkTracerProvider(resource=resource)
    processor: SpanProcessor = BatchSpanProcessor(span_exporter)
    provider.add_span_processor(processor)
    return provider
