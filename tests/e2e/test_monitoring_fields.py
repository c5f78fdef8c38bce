"""The log-based metrics of ``deploy/monitoring/metrics/`` against the function's real log lines.

Through the emulator's trigger: a success (and a duplicate delivery of its event), a reply repaired
once, a 429 then a success, a permanent failure (a blocked reply), a governance violation, a model
down until the retry budget is spent (RETRY_WAIT). Through
a ``sweep_flow_runs`` process of its own (a project with no trigger): a run whose worker died, and a
second due run left for the next sweep by ``?limit=1``. Then, on the JSON lines the processes
printed: every metric's filter selects some of them, every field a metric extracts is on them (a
number where a distribution reads it), every model request has exactly one ``llm.call`` line, and
every line has ``time`` in RFC 3339.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devstack.cloudevents import document_event_bytes, event_headers
from devstack.gemini_stub import Reply
from devstack.services import LOOPBACK_OPENER
from tests.builders import step_data
from tests.stacks import E2E_PROJECT, FALLBACK_PROFILE, ROOT, FunctionProcesses, Stack
from tests.unit.test_monitoring_bodies import extracted, is_distribution, is_number, metric_bodies, parse_filter
from worker_llm_client.catalog.documents import PROFILES
from worker_llm_client.catalog.push import push
from worker_llm_client.core.canonical import canonical_json, sha256_hex

pytestmark = pytest.mark.e2e
SWEEP_PROJECT = "monitoring-fields"  # no trigger: only this module's sweeper touches its runs
VARS = {"team": "payments", "week": "2026-W47", "notes": ["cut p95 by 30%"]}
TERMINAL = ("step.succeeded", "step.failed", "step.retry_scheduled")
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
TOKENS = ("promptTokens", "outputTokens", "thoughtsTokens", "cachedTokens", "totalTokens")
METRICS = metric_bodies()


@dataclass
class Driven:
    """The runs driven, the model requests each made, and the lines of both processes."""

    runs: dict[str, str] = field(default_factory=dict)  # scenario -> run id
    calls: dict[str, int] = field(default_factory=dict)  # scenario -> model requests the stub answered
    function_lines: list[dict[str, Any]] = field(default_factory=list)
    sweeper_lines: list[dict[str, Any]] = field(default_factory=list)
    sweep_answer: dict[str, Any] = field(default_factory=dict)

    @property
    def lines(self) -> list[dict[str, Any]]:
        """The lines of the driven runs and of the sweeper (whose project holds only our runs)."""
        ours = set(self.runs.values())
        return [line for line in self.function_lines if line.get("runId") in ours] + self.sweeper_lines

    def of(self, scenario: str, *messages: str) -> list[dict[str, Any]]:
        run_id = self.runs[scenario]
        lines = [line for line in self.function_lines + self.sweeper_lines if line.get("runId") == run_id]
        return [line for line in lines if not messages or line.get("message") in messages]


def _report(**extra: Any) -> dict[str, Any]:
    return step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS, **extra)


def _through_the_trigger(
    stack: Stack, stub: Any, driven: Driven, scenario: str, step: dict[str, Any], *replies: Reply
) -> Any:
    """Write a one-step run, wait for its terminal line and the event its own finalize caused."""
    run_id = driven.runs[scenario] = f"monitoring-{scenario}-{uuid.uuid4().hex[:8]}"
    stub.reset()
    stub.script(*replies)
    written = stack.db.collection("flow_runs").document(run_id).set({"status": "RUNNING", "steps": {"s": step}})
    stack.wait_for(run_id, lambda steps: steps["s"]["status"] in ("SUCCEEDED", "FAILED", "RETRY_WAIT"))
    stack.wait_for_log(lambda line: line.get("runId") == run_id and line.get("message") in TERMINAL)
    stack.wait_for_log(lambda line: line.get("runId") == run_id and line.get("message") == "event.ignored")
    driven.calls[scenario] = stub.calls()
    return written


def _duplicate_delivery(stack: Stack, driven: Driven, scenario: str, written: Any, step: dict[str, Any]) -> None:
    """Eventarc delivering the first write's event again, under another id: the claim loses."""
    run_id = driven.runs[scenario]
    body = document_event_bytes(
        E2E_PROJECT, run_id, {"status": "RUNNING", "steps": {"s": step}}, when=written.update_time
    )
    request = urllib.request.Request(
        f"{stack.function.url}/",
        data=base64.b64encode(body),
        method="POST",
        headers=event_headers(run_id, event_id=f"dup-{run_id}"),
    )
    with LOOPBACK_OPENER.open(request, timeout=30) as response:
        assert response.status == 200
    stack.wait_for_log(lambda line: line.get("runId") == run_id and line.get("message") == "step.claim_conflict")


def _fallback(stack: Stack, stub: Any, anthropic: Any, driven: Driven, down: list[Reply]) -> None:
    """Gemini stays down: a profile whose first fallback is not allowlisted (skipped) falls back to
    claude-json (the Anthropic stub), which serves."""
    body = {"provider": "gemini", "model": "gemini-2.5-flash", "fallbacks": ["not-listed", "claude-json"]}
    push(stack.db, PROFILES, FALLBACK_PROFILE, {**body, "sha256": sha256_hex(canonical_json(body))})
    anthropic.reset()
    step = step_data(prompt_id="weekly_report", profile=FALLBACK_PROFILE, vars=VARS)
    _through_the_trigger(stack, stub, driven, "fallback", step, *down)
    driven.calls["fallback"] += anthropic.calls()


def _through_the_sweeper(sweeper: Any, db: Any, stub: Any, driven: Driven) -> None:
    """A run whose worker died 30 minutes ago and one READY run due for 20 minutes; ``limit=1``
    re-drives the first and leaves the second overdue."""
    now = datetime.now(UTC)
    dead = {
        "token": "0" * 32,
        "worker": "gone/host/1",
        "claimedAt": now - timedelta(minutes=40),
        "leaseExpiresAt": now - timedelta(minutes=30),
    }
    stale = _report(status="RUNNING", attempt=1, claim=dead, startedAt=now - timedelta(minutes=40))
    runs = {
        "dead-worker": ({"s": stale}, now - timedelta(minutes=30)),
        "overdue": ({"s": _report()}, now - timedelta(minutes=20)),
    }
    for scenario, (steps, wake_at) in runs.items():
        run_id = driven.runs[scenario] = f"monitoring-{scenario}-{uuid.uuid4().hex[:8]}"
        db.collection("flow_runs").document(run_id).set(
            {"status": "RUNNING", "steps": steps, "executor": {"wakeAt": wake_at}}
        )
    stub.reset()
    request = urllib.request.Request(f"{sweeper.url}/?limit=1", data=b"", method="POST")
    with LOOPBACK_OPENER.open(request, timeout=120) as response:
        driven.sweep_answer = json.loads(response.read())
    driven.calls["dead-worker"] = stub.calls()
    watch = Stack(sweeper, db, None)
    watch.wait_for(driven.runs["dead-worker"], lambda steps: steps["s"]["status"] == "SUCCEEDED")
    watch.wait_for_log(lambda line: line.get("message") == "sweep.finished")


@pytest.fixture(scope="module")
def driven(
    stack: Stack,
    gemini_stub_server: Any,
    anthropic_stub_server: Any,
    firestore_emulator: Any,
    fake_gcs: Any,
    tmp_path_factory: Any,
) -> Iterator[Driven]:
    from google.cloud import firestore

    from worker_llm_client.catalog.push import push_all

    stub, result = gemini_stub_server, Driven()
    processes = FunctionProcesses.on(Path(tmp_path_factory.mktemp("sweeper")), firestore_emulator, fake_gcs, stub)
    db = firestore.Client(project=SWEEP_PROJECT)
    try:
        step = _report()
        written = _through_the_trigger(stack, stub, result, "success", step)
        _duplicate_delivery(stack, result, "success", written, step)
        _through_the_trigger(stack, stub, result, "repaired", _report(), Reply.text("Sure! Here it is."))
        too_many = Reply.http_error(429, "quota", retry_delay="1.5s")
        _through_the_trigger(stack, stub, result, "rate-limited", _report(), too_many)
        _through_the_trigger(stack, stub, result, "blocked", _report(), Reply.blocked("SAFETY"))
        ungoverned = step_data(prompt_id="weekly_report", profile="not-listed", vars=VARS)
        _through_the_trigger(stack, stub, result, "ungoverned", ungoverned)
        down = [Reply.http_error(503, "down")] * 8  # retried until the 5 s budget is spent: RETRY_WAIT
        _through_the_trigger(stack, stub, result, "unavailable", _report(), *down)
        _fallback(stack, stub, anthropic_stub_server, result, down)
        push_all(db, ROOT)
        sweeper = processes.start("sweep_flow_runs", SWEEP_PROJECT)
        _through_the_sweeper(sweeper, db, stub, result)
        result.function_lines = stack.logs()
        result.sweeper_lines = sweeper.json_log_lines()
        yield result
    finally:
        stub.reset()
        processes.stop_all()
        db.close()


# --- the metrics' filters and fields ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_metric_selects_lines_of_the_driven_scenarios(driven: Driven, name: str) -> None:
    log_filter = parse_filter(METRICS[name]["filter"])
    selected = [line for line in driven.lines if log_filter.matches(line)]
    seen = sorted({str(line.get("message")) for line in driven.lines})
    assert selected, f"{name}: no line matches {sorted(log_filter.events)} {log_filter.conditions}; seen: {seen}"


@pytest.mark.parametrize("name", sorted(METRICS))
def test_every_extracted_field_is_on_the_selected_lines(driven: Driven, name: str) -> None:
    body = METRICS[name]
    log_filter = parse_filter(body["filter"])
    selected = [line for line in driven.lines if log_filter.matches(line)]
    labels, value = extracted(body)
    for label, log_field in labels.items():
        values = [line[log_field] for line in selected if line.get(log_field) is not None]
        assert values, f"{name}: label {label} reads {log_field}, on none of the {len(selected)} selected lines"
        assert all(isinstance(v, str | int | float | bool) for v in values), f"{name}: {log_field} is not a scalar"
    if value is not None:
        assert is_distribution(body)
        wrong = [(line.get("message"), line.get(value)) for line in selected if not is_number(line.get(value))]
        assert selected and wrong == [], f"{name}: {value} is not a number on {wrong}"


# --- the lines the metrics are built on ------------------------------------------------------------


def test_each_model_request_has_exactly_one_llm_call_line(driven: Driven) -> None:
    for scenario, calls in driven.calls.items():
        lines = driven.of(scenario, "llm.call")
        assert len(lines) == calls, f"{scenario}: {calls} model requests, {len(lines)} llm.call lines"
        assert sorted(line["call"] for line in lines) == list(range(1, calls + 1)), scenario
    fixed = {"success": 1, "repaired": 2, "rate-limited": 2, "blocked": 1, "ungoverned": 0, "dead-worker": 1}
    assert {scenario: driven.calls[scenario] for scenario in fixed} == fixed
    assert driven.calls["unavailable"] in (3, 4)  # how many retries fit the budget depends on the jitter
    assert _outcomes(driven, "fallback")[-1] == "OK" and driven.calls["fallback"] in (4, 5)


def test_llm_call_lines_carry_every_field_of_the_spec(driven: Driven) -> None:
    lines = [line for line in driven.lines if line.get("message") == "llm.call"]
    assert lines
    for line in lines:
        served_by = (line["provider"], line["model"], line["llmProfile"])
        assert isinstance(line["outcome"], str), line
        assert served_by in {
            ("gemini", "gemini-2.5-flash", "flash-json"),
            ("gemini", "gemini-2.5-flash", FALLBACK_PROFILE),
            ("anthropic", "claude-sonnet-4-6", "claude-json"),  # the fallback scenario's fallback
        }, line
        assert all(type(line[key]) is int for key in ("latencyMs", "call", *TOKENS)), line
        assert line["costUsd"] is None or is_number(line["costUsd"]), line
        assert line["runId"] and line["stepId"] == "s" and type(line["attempt"]) is int, line


def _outcomes(driven: Driven, scenario: str) -> list[str]:
    return [line["outcome"] for line in sorted(driven.of(scenario, "llm.call"), key=lambda line: line["call"])]


def test_outcomes_name_what_each_request_met(driven: Driven) -> None:
    assert _outcomes(driven, "success") == _outcomes(driven, "dead-worker") == ["OK"]
    assert _outcomes(driven, "rate-limited") == ["LLM_RATE_LIMITED", "OK"]
    assert set(_outcomes(driven, "unavailable")) == {"LLM_UNAVAILABLE"}
    [gave_up] = [line for line in driven.of("unavailable", "llm.retry") if "gaveUp" in line]
    assert (gave_up["code"], gave_up["gaveUp"]) == ("LLM_UNAVAILABLE", "wait_exceeds_budget")
    [waiting] = driven.of("unavailable", "step.retry_scheduled")
    assert waiting["code"] == "LLM_UNAVAILABLE" and waiting["llmCalls"] == driven.calls["unavailable"]
    [retry] = driven.of("rate-limited", "llm.retry")
    assert retry["code"] == "LLM_RATE_LIMITED" and is_number(retry["waitSeconds"]) and retry["waitSeconds"] >= 1.5
    priced = driven.of("success", "llm.call")
    assert all(is_number(line["costUsd"]) and line["costUsd"] > 0 for line in priced), "flash-json has pricing"


def test_a_blocked_reply_is_an_llm_blocked_call(driven: Driven) -> None:
    """The spec's outcome is "OK or the error code" of the request, LLM_BLOCKED among them: a reply
    blocked for safety answers HTTP 200 but is no answer, and must not count as OK."""
    assert _outcomes(driven, "blocked") == ["LLM_BLOCKED"]


def test_terminal_step_lines_carry_outcome_code_and_cost(driven: Driven) -> None:
    [succeeded] = driven.of("success", "step.succeeded")
    assert type(succeeded["llmCalls"]) is int and is_number(succeeded["costUsd"]) and succeeded["cached"] is False
    [blocked] = driven.of("blocked", "step.failed")
    assert (blocked["code"], blocked["retryable"], blocked["llmCalls"]) == ("LLM_BLOCKED", False, 1)
    assert "costUsd" in blocked and isinstance(blocked["usage"], dict)
    [ungoverned] = driven.of("ungoverned", "step.failed")
    assert (ungoverned["code"], ungoverned["retryable"]) == ("PROFILE_NOT_ALLOWED", False)
    [violation] = driven.of("ungoverned", "governance.violation")
    assert (violation["profile"], violation["reason"]) == ("not-listed", "profile_not_in_allowlist")
    permanent = parse_filter(METRICS["worker_llm_client_step_permanent_failures"]["filter"])
    assert permanent.matches(blocked) and permanent.matches(ungoverned)
    assert not any(permanent.matches(line) for line in driven.of("success") + driven.of("rate-limited"))


def test_the_sweep_summary_counts_the_backlog(driven: Driven) -> None:
    [finished] = [line for line in driven.sweeper_lines if line.get("message") == "sweep.finished"]
    keys = ("runs", "steps", "repaired", "failed", "deferred", "limit", "overdueRuns", "oldestOverdueSeconds")
    assert all(type(finished[key]) is int for key in keys), finished
    assert {key: finished[key] for key in keys} == {key: driven.sweep_answer[key] for key in keys}
    assert (finished["runs"], finished["steps"], finished["limit"]) == (1, 1, 1)
    assert finished["overdueRuns"] >= 1 and finished["oldestOverdueSeconds"] >= 19 * 60, finished
    [expired] = driven.of("dead-worker", "step.lease_expired")
    assert expired["attempt"] == 1


def test_every_line_has_an_rfc3339_time(driven: Driven) -> None:
    lines = driven.function_lines + driven.sweeper_lines
    wrong = [(line.get("message"), line.get("time")) for line in lines if not RFC3339.match(str(line.get("time")))]
    assert lines and wrong == []
    for line in lines:
        datetime.fromisoformat(line["time"])
