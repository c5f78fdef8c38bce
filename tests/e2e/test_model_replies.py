"""Every way a model answer goes wrong, end to end through the emulator trigger and the stub:
the step ends in the right status, code and retryable flag, with the right number of model calls
and usage summed over all of them."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.gemini_stub import Reply
from tests.builders import step_data
from tests.stacks import Stack
from worker_llm_client.catalog.documents import PROFILES
from worker_llm_client.catalog.push import push

pytestmark = pytest.mark.e2e
VARS = {"team": "search", "week": "2026-W47", "notes": ["reindex done"]}
BAD_ENUM = '{"title": "t", "summary": "s", "status": "unknown", "highlights": ["h"], "risks": [], "confidence": 0.5}'

# name: (scripted replies, profile, status, code, retryable, model calls; 0 = 3 or 4)
CASES: dict[str, tuple[list[Any], str, str, str | None, bool | None, int]] = {
    "thought-parts": ([Reply.with_thoughts("private chain of thought")], "flash-json", "SUCCEEDED", None, None, 1),
    "prompt-blocked": ([Reply.blocked("SAFETY")], "flash-json", "FAILED", "LLM_BLOCKED", False, 1),
    "reply-blocked": ([Reply.finish("PROHIBITED_CONTENT")], "flash-json", "FAILED", "LLM_BLOCKED", False, 1),
    "recitation": ([Reply.finish("RECITATION", "partial")], "flash-json", "FAILED", "LLM_BLOCKED", False, 1),
    "truncated": ([Reply.truncated()], "flash-json", "FAILED", "LLM_TRUNCATED", False, 1),
    "empty-then-repaired": ([Reply.empty()], "flash-json", "SUCCEEDED", None, None, 2),
    "not-json-after-repair": (
        [Reply.text("Sure! Here it is."), Reply.text('```json\n{"title": "t"}\n```')],
        "flash-json",
        "FAILED",
        "OUTPUT_NOT_JSON",
        False,
        2,
    ),
    "schema-invalid-then-repaired": (
        [Reply.text('{"title": "only a title"}')],
        "flash-json",
        "SUCCEEDED",
        None,
        None,
        2,
    ),
    "wrong-enum-after-repair": (
        [Reply.text(BAD_ENUM), Reply.text(BAD_ENUM)],
        "flash-json",
        "FAILED",
        "OUTPUT_SCHEMA_MISMATCH",
        False,
        2,
    ),
    "http-400-schema-rejected": (
        [Reply.http_error(400, "Invalid JSON payload: response_json_schema.properties[0]: unsupported 'foo'")],
        "flash-json",
        "FAILED",
        "LLM_BAD_REQUEST",
        False,
        1,
    ),
    "http-401": ([Reply.http_error(401, "API key not valid")], "flash-json", "FAILED", "LLM_AUTH", False, 1),
    "http-403": ([Reply.http_error(403, "permission denied")], "flash-json", "FAILED", "LLM_AUTH", False, 1),
    "http-404": (
        [Reply.http_error(404, "models/gemini-2.5-flash is not found")],
        "flash-json",
        "FAILED",
        "LLM_BAD_REQUEST",
        False,
        1,
    ),
    # transient errors are retried within the invocation (MODEL_RETRY_BUDGET_SECONDS=5 here)...
    "http-429-then-success": ([Reply.http_error(429, "quota", retry_delay="1.5s")], "flash-json", "SUCCEEDED", None, None, 2),
    "http-503-twice-then-success": ([Reply.http_error(503, "busy")] * 2, "flash-json", "SUCCEEDED", None, None, 3),
    "client-timeout-then-success": ([Reply.delay(3.0)], "short-timeout", "SUCCEEDED", None, None, 2),
    # ...until the budget runs out; how many calls fit depends on the jitter: 3 or 4
    "http-503-persistent": ([Reply.http_error(503, "down")] * 8, "flash-json", "RETRY_WAIT", "LLM_UNAVAILABLE", True, 0),
}  # fmt: skip


@pytest.fixture(scope="module")
def short_timeout_profile(stack: Stack) -> None:
    body = {
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "enabled": True,
        "timeoutSeconds": 0.5,
        "repairAttempts": 1,
    }
    push(stack.db, PROFILES, "short-timeout", {**body, "sha256": "f" * 64})


@pytest.mark.parametrize("case", list(CASES))
def test_reply_outcome(stack: Stack, stub: Any, run_id: str, case: str, short_timeout_profile: None) -> None:
    replies, profile, status, code, retryable, calls = CASES[case]
    stub.script(*replies)
    stack.db.collection("flow_runs").document(run_id).set(
        {"status": "RUNNING", "steps": {"s": step_data(prompt_id="weekly_report", profile=profile, vars=VARS)}}
    )
    step = stack.wait_for(run_id, lambda steps: steps["s"]["status"] in ("SUCCEEDED", "FAILED", "RETRY_WAIT"))["s"]
    assert step["status"] == status
    assert stub.calls() == calls if calls else stub.calls() in (3, 4)
    calls = stub.calls()
    responses = [e for e in stack.logs() if e.get("runId") == run_id and e["message"] == "llm.call"]
    summed = sum(e["totalTokens"] for e in responses)
    if status == "SUCCEEDED":
        assert step["outputs"]["llmCalls"] == calls and step["outputs"]["usage"]["totalTokens"] == summed > 0
        assert "error" not in step
        return
    assert (step["error"]["code"], step["error"]["retryable"], step["error"]["attempt"]) == (code, retryable, 1)
    event = "step.failed" if status == "FAILED" else "step.retry_scheduled"
    final = stack.wait_for_log(lambda e: e.get("runId") == run_id and e["message"] == event)
    assert final["llmCalls"] == calls and final["usage"].get("totalTokens", 0) == summed
    if code in ("OUTPUT_NOT_JSON", "OUTPUT_SCHEMA_MISMATCH", "LLM_TRUNCATED"):
        assert ".invalid.json" in step["error"]["message"]
    if status == "RETRY_WAIT":
        assert step["retryAt"] > step["startedAt"]


def test_thought_tokens_are_counted_but_thoughts_are_not_reported(stack: Stack, stub: Any, run_id: str) -> None:
    stub.script(Reply.with_thoughts("private chain of thought"))
    stack.db.collection("flow_runs").document(run_id).set(
        {"status": "RUNNING", "steps": {"s": step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS)}}
    )
    outputs = stack.wait_for(run_id, lambda steps: steps["s"]["status"] == "SUCCEEDED")["s"]["outputs"]
    blob = stack.bucket.get_blob(outputs["gcs_uri"].removeprefix(f"gs://{stack.bucket.name}/"))
    assert outputs["usage"]["thoughtsTokens"] > 0
    assert "private chain of thought" not in blob.download_as_text()


def test_a_rate_limited_call_is_retried_no_sooner_than_the_servers_hint(stack: Stack, stub: Any, run_id: str) -> None:
    stub.script(Reply.http_error(429, "quota", retry_delay="1.5s"))
    stack.db.collection("flow_runs").document(run_id).set(
        {"status": "RUNNING", "steps": {"s": step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS)}}
    )
    step = stack.wait_for(run_id, lambda steps: steps["s"]["status"] == "SUCCEEDED")["s"]
    first, second = stub.requests
    assert second.received_at - first.received_at >= 1.5
    assert step["outputs"]["llmCalls"] == 2 and step["attempt"] == 1
