"""Which exporter the standard OTEL_TRACES_EXPORTER selects, and what each builds."""

from __future__ import annotations

import pytest

from worker_llm_client import tracing
from worker_llm_client.config import Settings
from worker_llm_client.errors import ConfigurationError


@pytest.mark.parametrize(
    ("env", "exporter"),
    [
        ({}, "none"),
        ({"K_SERVICE": "worker-llm-client"}, "gcp_trace"),  # on Cloud Run: Cloud Trace
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "otlp"),
        ({"K_SERVICE": "f", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}, "gcp_trace"),
        ({"K_SERVICE": "f", "OTEL_TRACES_EXPORTER": "none"}, "none"),  # the standard switch wins
        ({"OTEL_TRACES_EXPORTER": " OTLP , console"}, "otlp"),  # the first of a list
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
    ],
)
def test_the_exporter_is_the_standard_switch_else_where_we_run(env: dict[str, str], exporter: str) -> None:
    assert Settings.from_env(env).traces_exporter == exporter


def test_an_unknown_exporter_is_a_configuration_error_when_there_is_work() -> None:
    settings = Settings.from_env(
        {"GOOGLE_CLOUD_PROJECT": "p", "ARTIFACTS_BUCKET": "b", "OTEL_TRACES_EXPORTER": "zipkin"}
    )
    assert settings.traces_exporter == "none"
    with pytest.raises(ConfigurationError, match="OTEL_TRACES_EXPORTER must be one of gcp_trace, otlp, console, none"):
        settings.require_executor_settings()


@pytest.mark.parametrize(("exporter", "kind"), [("otlp", "OTLPSpanExporter"), ("console", "ConsoleSpanExporter")])
def test_each_exporter_is_batched_under_the_services_name(
    exporter: tracing.TracesExporter, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    provider = tracing._provider(exporter)
    try:
        [processor] = provider._active_span_processor._span_processors
        assert type(processor).__name__ == "BatchSpanProcessor"
        assert type(processor._batch_processor._exporter).__name__ == kind
        assert provider.resource.attributes["service.name"] == tracing.SERVICE_NAME
    finally:
        provider.shutdown()


def test_the_service_name_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "reports-eu")
    provider = tracing._provider("console")
    try:
        assert provider.resource.attributes["service.name"] == "reports-eu"
    finally:
        provider.shutdown()


def test_an_exporter_that_cannot_be_built_leaves_the_work_untraced_not_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    from structlog.testing import capture_logs

    from worker_llm_client.config import Settings

    def broken(exporter: str) -> None:
        raise RuntimeError("no credentials for Cloud Trace")

    monkeypatch.setattr(tracing, "_provider", broken)
    monkeypatch.setattr(tracing, "settings", lambda: Settings(project="p", traces_exporter="gcp_trace"))
    monkeypatch.setattr(tracing, "_installed", {})
    with capture_logs() as logs, tracing.root("handle_flow_run_event", None) as root, tracing.span("claim") as span:
        done = True
    assert done and root is tracing.NOOP and span is tracing.NOOP
    assert [(e["event"], e["exporter"], e["errorType"]) for e in logs] == [
        ("tracing.unavailable", "gcp_trace", "RuntimeError")
    ]
