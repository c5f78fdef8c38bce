"""What an operator sees of a step: one llm.call line per request, costs, and the trace's spans
(recorded by an in-memory exporter), none of which carries prompt text, variables or model output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from structlog.testing import capture_logs

from tests.builders import T0, make_profile, make_prompt, step_data
from tests.fakes import FakeCatalog, FakeLlm, reply
from tests.world import World
from worker_llm_client import tracing
from worker_llm_client.core.trace_context import TraceParent
from worker_llm_client.errors import LlmRateLimited, LlmUnavailable
from worker_llm_client.execution_models import LlmResult, LongContextPricing, Pricing, Usage

PRICING = Pricing(0.30, 2.50, "2026-11-20", 0.075, LongContextPricing(200_000, 0.60, 5.0))
SECRET_VAR, SECRET_OUTPUT = "var-8c1f", "output-51d2"
INCOMING = TraceParent("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", True)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)


def _world(respond: Any = None, pricing: Pricing | None = PRICING) -> World:
    catalog = FakeCatalog([make_prompt()], [make_profile(pricing=pricing)])
    return World(FakeLlm(respond), catalog=catalog)


def _secret_reply() -> LlmResult:
    text = json.dumps({"title": SECRET_OUTPUT, "severity": "low", "findings": ["a"]})
    return reply(
        text,
        usage=Usage(prompt_tokens=1_000, output_tokens=200, thoughts_tokens=50, cached_tokens=400, total_tokens=1_250),
    )


def test_every_request_has_one_llm_call_line_and_the_step_its_cost() -> None:
    answers: list[LlmResult | Exception] = [LlmUnavailable("503"), _secret_reply()]
    world = _world(lambda request: answers.pop(0))
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data(vars={"team": SECRET_VAR})}))
    calls = [line for line in logs if line["event"] == "llm.call"]
    assert [(c["outcome"], c["call"]) for c in calls] == [("LLM_UNAVAILABLE", 1), ("OK", 2)]
    one = (600 * 0.30 + 400 * 0.075 + 250 * 2.50) / 1e6
    assert calls[1] | {"latencyMs": 0} == {
        "event": "llm.call",
        "log_level": "info",
        "outcome": "OK",
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "llmProfile": "fast",
        "call": 2,
        "latencyMs": 0,
        "modelVersion": "gemini-2.5-flash-001",
        "finishReason": "STOP",
        "costUsd": pytest.approx(one),
        "promptTokens": 1_000,
        "outputTokens": 200,
        "thoughtsTokens": 50,
        "cachedTokens": 400,
        "totalTokens": 1_250,
    }
    assert calls[0]["costUsd"] == 0.0 and calls[0]["totalTokens"] == 0
    outputs = world.step("s1")["outputs"]
    assert outputs["costUsd"] == pytest.approx(one) and outputs["provider"] == "gemini"
    [succeeded] = [line for line in logs if line["event"] == "step.succeeded"]
    assert succeeded["costUsd"] == pytest.approx(one)
    assert SECRET_VAR not in repr(logs) and SECRET_OUTPUT not in repr(logs)


def test_a_failed_attempt_reports_what_its_requests_cost() -> None:
    not_json = reply("not json", usage=Usage(prompt_tokens=100, output_tokens=10))
    world = _world(lambda request: not_json)  # the repair is billed too
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    [failed] = [line for line in logs if line["event"] == "step.failed"]
    assert failed["code"] == "OUTPUT_NOT_JSON" and failed["llmCalls"] == 2
    assert failed["costUsd"] == pytest.approx(2 * (100 * 0.30 + 10 * 2.50) / 1e6)


def test_an_unpriced_profile_costs_null_and_a_reused_artifact_nothing() -> None:
    world = _world(pricing=None)
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["outputs"]["costUsd"] is None
    priced = _world()
    priced.executor.handle(priced.run({"s1": step_data()}))
    assert priced.step("s1")["outputs"]["costUsd"] > 0
    replayed = priced.run({"s1": step_data(attempt=1)})  # put back to READY: the same request again
    priced.executor.handle(replayed)
    outputs = priced.step("s1")["outputs"]
    assert (outputs["cached"], outputs["llmCalls"], outputs["costUsd"]) == (True, 0, 0.0)
    assert len(priced.llm.requests) == 1


def _by_name(exported: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exported:
        found.setdefault(span.name, []).append(span)
    return found


def test_a_step_is_traced_claim_step_resolve_model_artifact_finalize(spans: InMemorySpanExporter) -> None:
    world = _world(lambda request: _secret_reply())
    snapshot = world.run({"s1": step_data(vars={"team": SECRET_VAR})})
    with tracing.root("handle_flow_run_event", INCOMING, {"flow.run_id": "r1"}):
        world.executor.handle(snapshot)
    named = _by_name(spans.get_finished_spans())
    assert set(named) == {
        "handle_flow_run_event", "claim", "step", "catalog.resolve", "generate_content gemini-2.5-flash",
        "artifact.write", "finalize",
    }  # fmt: skip
    [root], [claim], [step] = named["handle_flow_run_event"], named["claim"], named["step"]
    assert root.context is not None and root.parent is not None
    assert f"{root.context.trace_id:032x}" == INCOMING.trace_id and f"{root.parent.span_id:016x}" == INCOMING.span_id
    assert claim.parent is not None and claim.parent.span_id == root.context.span_id
    assert claim.attributes is not None and claim.attributes["flow.steps_claimed"] == 1
    assert step.parent is not None and step.parent.span_id == root.context.span_id
    assert step.attributes is not None and step.context is not None
    assert step.attributes["flow.status"] == "SUCCEEDED" and step.attributes["flow.step_id"] == "s1"
    for child in ("catalog.resolve", "generate_content gemini-2.5-flash", "artifact.write", "finalize"):
        [span] = named[child]
        assert span.parent is not None and span.parent.span_id == step.context.span_id, child
    [model] = named["generate_content gemini-2.5-flash"]
    assert model.attributes is not None
    assert {key: model.attributes[key] for key in model.attributes if key.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": "gemini-2.5-flash",
        "gen_ai.request.temperature": 0.2,
        "gen_ai.response.model": "gemini-2.5-flash-001",
        "gen_ai.response.id": "resp-1",
        "gen_ai.response.finish_reasons": ("STOP",),
        "gen_ai.usage.input_tokens": 1_000,
        "gen_ai.usage.output_tokens": 250,
    }
    everything = repr([(s.name, dict(s.attributes or {}), s.events, s.status) for s in spans.get_finished_spans()])
    assert SECRET_VAR not in everything and SECRET_OUTPUT not in everything and "Weekly report" not in everything


def test_a_failing_request_marks_its_span_with_the_code_only(spans: InMemorySpanExporter) -> None:
    answers: list[LlmResult | Exception] = [LlmRateLimited(f"quota for {SECRET_VAR}", retry_after=0.0), reply()]
    world = _world(lambda request: answers.pop(0))
    with tracing.root("handle_flow_run_event", None):
        world.executor.handle(world.run({"s1": step_data()}))
    failed, succeeded = _by_name(spans.get_finished_spans())["generate_content gemini-2.5-flash"]
    assert failed.status.status_code == StatusCode.ERROR and failed.attributes is not None
    assert failed.attributes["error.type"] == "LLM_RATE_LIMITED" and failed.status.description is None
    assert succeeded.status.status_code == StatusCode.UNSET
    assert SECRET_VAR not in repr([(s.attributes, s.events) for s in spans.get_finished_spans()])


def test_log_lines_inside_a_span_carry_its_id(spans: InMemorySpanExporter) -> None:
    import structlog

    world = _world()
    merged = [structlog.contextvars.merge_contextvars]
    with capture_logs(processors=merged) as seen, tracing.root("handle_flow_run_event", INCOMING):
        world.executor.handle(world.run({"s1": step_data()}))
    named = _by_name(spans.get_finished_spans())
    [model] = named["generate_content gemini-2.5-flash"]
    [call] = [line for line in seen if line["event"] == "llm.call"]
    assert model.context is not None
    assert call["logging.googleapis.com/spanId"] == f"{model.context.span_id:016x}"
    assert call["logging.googleapis.com/trace_sampled"] is True


def test_traces_off_cost_no_span_and_no_sdk() -> None:
    tracing.install(None)
    with tracing.root("handle_flow_run_event", INCOMING) as root, tracing.span("claim") as span:
        root.set(x=1)
        span.fail("X")
    assert root is tracing.NOOP and span is tracing.NOOP


def test_claim_time_failures_say_their_code_and_whether_retryable() -> None:
    """The permanent-failure metric counts step.failed lines with retryable=false: those written
    by a claim (a used budget, a run that cannot hold the result) say it too."""
    world = _world()
    exhausted = step_data("RETRY_WAIT", attempt=3, retryAt=T0, error={"code": "LLM_TIMEOUT", "message": "m"})
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": exhausted}))
    [failed] = [line for line in logs if line["event"] == "step.failed"]
    assert (failed["code"], failed["retryable"], failed["reason"]) == ("LLM_TIMEOUT", True, "budget_used")
    assert world.step("s1")["error"]["code"] == "LLM_TIMEOUT" and world.llm.requests == []
    crowded = _world()
    many = {f"s{i:03}": step_data("SUCCEEDED") for i in range(500)} | {"z": step_data()}
    with capture_logs() as logs:
        crowded.executor.handle(crowded.run(many))
    [refused] = [line for line in logs if line["event"] == "step.failed"]
    assert (refused["code"], refused["retryable"]) == ("RUN_TOO_LARGE", False)
