"""End to end through the local OTLP receiver: the spans the function exports for an event.

``stack`` exports to the session's receiver (``stack.traces``) and is driven by the emulator's
trigger. The ``traceparent`` and no-op cases need events posted by hand, so they use a function
process of their own on a project without a trigger, under a service name of its own.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.cloudevents import document_event_bytes, event_headers
from devstack.gemini_stub import Reply
from devstack.otlp_receiver import OtlpReceiver, Span
from devstack.services import LOOPBACK_OPENER
from tests.builders import step_data
from tests.stacks import ROOT, FunctionProcesses, Stack

pytestmark = pytest.mark.e2e

MODEL = "gemini-2.5-flash"
ROOT_SPAN, MODEL_SPAN = "handle_flow_run_event", f"generate_content {MODEL}"
SERVICE = "worker-llm-client"
DIRECT_PROJECT, DIRECT_SERVICE = "traces-project", "worker-llm-client-direct"
PROMPT_MARKER = "quartz-zebra-prompt-7781"  # in a note the template renders into the prompt
OUTPUT_MARKER = "OUTPUT-MARKER-9931"  # in the model's reply
REPLY = {
    "title": f"Week {OUTPUT_MARKER}",
    "summary": f"All good {OUTPUT_MARKER}.",
    "status": "on_track",
    "highlights": [OUTPUT_MARKER],
    "risks": [],
    "confidence": 0.9,
}
OUTPUT_KEYS = {  # docs/contract.md: "exactly these keys"
    "gcs_uri", "sha256", "sizeBytes", "promptId", "promptVersion", "promptSha256", "llmProfile", "profileVersion",
    "provider", "model", "modelVersion", "responseId", "finishReason", "usage", "llmCalls", "latencyMs", "costUsd",
    "secretsRedacted", "cached", "fallbackFrom",
}  # fmt: skip
GENAI_KEYS = (
    "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.response.finish_reasons",
)  # fmt: skip
SPAN_WAIT_SECONDS = 10.0


def _report() -> dict[str, Any]:
    notes = [f"shipped {PROMPT_MARKER}"]
    return step_data(
        prompt_id="weekly_report", profile="flash-json", vars={"team": "core", "week": "W1", "notes": notes}
    )


def _trace_ids_of_run(spans: list[Span], run_id: str) -> set[str]:
    return {s.trace_id for s in spans if s.attributes.get("flow.run_id") == run_id}


def _finished(run_id: str, trace_id: str | None = None) -> Any:
    """A predicate: the run's (or trace's) root span arrived, with its step and finalize spans."""

    def done(spans: list[Span]) -> bool:
        traces = {trace_id} if trace_id else _trace_ids_of_run(spans, run_id)
        names = {s.name for s in spans if s.trace_id in traces}
        return {ROOT_SPAN, "step", "finalize"} <= names

    return done


def _tree(trace: list[Span]) -> str:
    """The trace as an indented outline, for failure messages."""
    ids = {s.span_id for s in trace}

    def lines(parent: Span, depth: int) -> list[str]:
        below = sorted(_children(trace, parent), key=lambda s: s.start_ns)
        return [f"{'  ' * depth}{parent.name} {dict(parent.attributes)}"] + [
            line for child in below for line in lines(child, depth + 1)
        ]

    return "\n".join(line for top in trace if top.parent_span_id not in ids for line in lines(top, 0))


def _children(trace: list[Span], parent: Span) -> list[Span]:
    return [s for s in trace if s.parent_span_id == parent.span_id]


def _only(spans: list[Span], name: str) -> Span:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{len(found)} spans named {name!r}: {found}"
    return found[0]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    else:
        yield str(value)


def _ignored(stack: Stack, run_id: str, count: int, timeout: float = 10.0) -> None:
    """Wait for ``count`` events of the run acknowledged as having nothing runnable."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in stack.logs() if line.get("runId") == run_id]
        if len([line for line in lines if line.get("reason") == "nothing_runnable"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} no-op events for {run_id}\n{stack.function.log_tail()}")


def _post(url: str, body: bytes, run_id: str, event_id: str, traceparent: str) -> int:
    headers = event_headers(run_id, event_id=event_id) | {"traceparent": traceparent}
    request = urllib.request.Request(f"{url}/", data=body, method="POST", headers=headers)
    with LOOPBACK_OPENER.open(request, timeout=60) as response:
        return int(response.status)


def _traceparent() -> tuple[str, str, str]:
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def test_a_step_that_succeeds_is_one_trace_of_claim_and_step(stack: Stack, stub: Any, run_id: str) -> None:
    stub.script(Reply.text(json.dumps(REPLY)))
    written_ns = time.time_ns()
    stack.db.collection("flow_runs").document(run_id).set({"status": "RUNNING", "steps": {"s1": _report()}})
    final = stack.wait_for(run_id, lambda steps: steps["s1"]["status"] in ("SUCCEEDED", "FAILED"))["s1"]
    assert final["status"] == "SUCCEEDED", final

    traces: OtlpReceiver = stack.traces
    assert traces.wait_for(_finished(run_id), SPAN_WAIT_SECONDS), f"no complete trace for {run_id}: {traces.spans()}"
    spans = traces.spans()
    [trace_id] = _trace_ids_of_run(spans, run_id)
    trace = [s for s in spans if s.trace_id == trace_id]
    root = _only(trace, ROOT_SPAN)
    assert root.kind == "SERVER" and root.parent_span_id not in {s.span_id for s in trace}
    assert sorted(s.name for s in _children(trace, root)) == ["claim", "step"], _tree(trace)
    claim, step, finalize = _only(trace, "claim"), _only(trace, "step"), _only(trace, "finalize")
    under_step = Counter(s.name for s in _children(trace, step))  # the step's time includes its finalize
    assert under_step.keys() == {"catalog.resolve", MODEL_SPAN, "artifact.write", "finalize"}, _tree(trace)
    assert under_step[MODEL_SPAN] == 1 and under_step["artifact.write"] == 1, _tree(trace)
    assert len(trace) == 3 + sum(under_step.values()), f"spans outside the specified tree:\n{_tree(trace)}"
    assert {s.service_name for s in trace} == {SERVICE}
    assert claim.end_ns <= step.start_ns

    outputs = final["outputs"]
    assert set(outputs) == OUTPUT_KEYS
    assert outputs["llmCalls"] == 1 and outputs["cached"] is False and outputs["finishReason"] == "STOP"
    assert isinstance(outputs["costUsd"], float | int) and outputs["costUsd"] > 0  # flash-json has pricing
    blob = stack.bucket.get_blob(outputs["gcs_uri"].removeprefix(f"gs://{stack.bucket.name}/"))
    assert json.loads(blob.download_as_bytes()) == REPLY

    assert claim.attributes["flow.run_id"] == run_id and claim.attributes["flow.steps_claimed"] == 1
    assert {
        key: step.attributes.get(key) for key in ("flow.run_id", "flow.step_id", "flow.attempt", "flow.status")
    } == {
        "flow.run_id": run_id,
        "flow.step_id": "s1",
        "flow.attempt": 1,
        "flow.status": "SUCCEEDED",
    }
    assert "error.type" not in step.attributes
    assert step.attributes["flow.cost_usd"] == pytest.approx(outputs["costUsd"])
    assert finalize.attributes["flow.step_id"] == "s1"

    call = _only(trace, MODEL_SPAN)
    assert call.kind == "CLIENT" and call.status_code != "ERROR" and "error.type" not in call.attributes
    usage = outputs["usage"]
    assert {key: call.attributes.get(key) for key in GENAI_KEYS} == {
        "gen_ai.operation.name": "generate_content",
        "gen_ai.provider.name": "gcp.gemini",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": stub.model_version,
        "gen_ai.usage.input_tokens": usage["promptTokens"],
        "gen_ai.usage.output_tokens": usage["outputTokens"] + usage["thoughtsTokens"],  # thinkingBudget 0 here
        "gen_ai.response.finish_reasons": ["STOP"],
    }
    assert call.attributes["flow.cost_usd"] == pytest.approx(outputs["costUsd"])

    leaked = {
        (span.name, text)
        for span in trace
        for text in _strings(dict(span.attributes))
        if PROMPT_MARKER in text or OUTPUT_MARKER in text or "weekly status report" in text
    }
    assert leaked == set(), "prompt or model output in span attributes"

    # the claim's and the finalize's writes come back as events: no-ops, which start no span
    _ignored(stack, run_id, 2)

    def roots_since_the_write(now: list[Span]) -> list[Span]:
        return [s for s in now if s.name == ROOT_SPAN and s.start_ns >= written_ns]

    extra = traces.wait_for(lambda now: len(roots_since_the_write(now)) > 1, timeout=1.0)
    assert not extra, roots_since_the_write(traces.spans())


@pytest.fixture(scope="module")
def direct(
    firestore_emulator: Any,
    fake_gcs: Any,
    gemini_stub_server: Any,
    otlp_receiver: OtlpReceiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Any, Any]]:
    """A function process on a project without a trigger (only the events posted here reach it),
    exporting to the receiver as ``DIRECT_SERVICE``; and a Firestore client of that project."""
    from google.cloud import firestore

    from worker_llm_client.catalog.push import push_all

    log_root: Path = tmp_path_factory.mktemp("traces-functions")
    processes = FunctionProcesses.on(log_root, firestore_emulator, fake_gcs, gemini_stub_server, traces=otlp_receiver)
    function = processes.start("handle_flow_run_event", DIRECT_PROJECT, OTEL_SERVICE_NAME=DIRECT_SERVICE)
    db = firestore.Client(project=DIRECT_PROJECT)
    push_all(db, ROOT)
    yield function, db
    db.close()
    processes.stop_all()


def _run_one_step(function: Any, db: Any, run_id: str, traceparent: str) -> None:
    """Write a run with one READY step and post its event to ``function`` with ``traceparent``."""
    data = {"status": "RUNNING", "steps": {"s1": _report()}}
    written = db.collection("flow_runs").document(run_id).set(data)
    body = document_event_bytes(DIRECT_PROJECT, run_id, data, when=written.update_time)
    assert _post(function.url, body, run_id, f"{run_id}-write", traceparent) == 200
    assert db.collection("flow_runs").document(run_id).get().to_dict()["steps"]["s1"]["status"] == "SUCCEEDED"


def test_an_event_posted_with_a_traceparent_continues_that_trace(
    direct: tuple[Any, Any], stub: Any, otlp_receiver: OtlpReceiver, run_id: str
) -> None:
    function, db = direct
    trace_id, parent_span, traceparent = _traceparent()

    _run_one_step(function, db, run_id, traceparent)

    arrived = otlp_receiver.wait_for(_finished(run_id, trace_id), SPAN_WAIT_SECONDS)
    assert arrived, f"no trace {trace_id}: {[s for s in otlp_receiver.spans() if s.service_name == DIRECT_SERVICE]}"
    trace = [s for s in otlp_receiver.spans() if s.trace_id == trace_id]
    root = _only(trace, ROOT_SPAN)
    assert root.parent_span_id == parent_span and root.kind == "SERVER"
    assert _only(trace, "step").attributes["flow.run_id"] == run_id
    assert {s.service_name for s in trace} == {DIRECT_SERVICE}
    assert stub.calls() == 1


def test_a_no_op_event_of_our_own_write_starts_no_span(
    direct: tuple[Any, Any], stub: Any, otlp_receiver: OtlpReceiver, run_id: str
) -> None:
    function, db = direct
    _run_one_step(function, db, run_id, _traceparent()[2])
    otlp_receiver.wait_for(_finished(run_id), SPAN_WAIT_SECONDS)  # that step's spans, before counting
    snapshot = db.collection("flow_runs").document(run_id).get()  # what the finalize wrote
    own_write = document_event_bytes(DIRECT_PROJECT, run_id, snapshot.to_dict(), when=snapshot.update_time)
    exported = len([s for s in otlp_receiver.spans() if s.service_name == DIRECT_SERVICE])
    trace_id, _, traceparent = _traceparent()

    assert _post(function.url, own_write, run_id, f"{run_id}-own-write", traceparent) == 200

    def since_the_replay(spans: list[Span]) -> list[Span]:
        ours = [s for s in spans if s.service_name == DIRECT_SERVICE][exported:]
        return ours + [s for s in spans if s.trace_id == trace_id and s.service_name != DIRECT_SERVICE]

    assert not otlp_receiver.wait_for(lambda spans: bool(since_the_replay(spans)), timeout=1.0), since_the_replay(
        otlp_receiver.spans()
    )
    assert stub.calls() == 1
