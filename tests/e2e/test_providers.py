"""One step, four vendors: switching a step's profile between gemini, openai, anthropic and an
openai_compatible endpoint is a profile change, each served through its real SDK against its local
stub, with the vendor's usage, cost and fault codes mapped into the contract; and a profile whose
model stays unavailable falls back to the next one."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from google.cloud.firestore_v1.field_path import FieldPath

from devstack import anthropic_stub as anthropic_replies
from devstack import gemini_stub as gemini_replies
from devstack import openai_stub as openai_replies
from tests.builders import step_data
from tests.stacks import ROOT, Stack
from worker_llm_client.catalog.documents import PROFILES
from worker_llm_client.catalog.push import push
from worker_llm_client.core.canonical import canonical_json, sha256_hex

pytestmark = pytest.mark.e2e
VARS = {"team": "search", "week": "2026-W47", "notes": ["reindex done"]}
SCHEMA = json.loads((ROOT / "schemas" / "weekly_report.json").read_text(encoding="utf-8"))


def _compatible_profile(stack: Stack, base_url: str) -> None:
    """An OpenAI-compatible endpoint (here the OpenAI stub) that takes llama.cpp's schema form."""
    body: dict[str, Any] = {
        "provider": "openai_compatible",
        "model": "local-model",
        "endpoint": {"baseUrl": base_url, "structuredOutput": "json_object_schema"},
        "generation": {"temperature": 0, "topK": 40, "maxOutputTokens": 512},
        "timeoutSeconds": 30,
        "pricing": {"inputPerMTok": 0.0, "outputPerMTok": 0.0, "asOf": "2026-11-26"},
    }
    push(stack.db, PROFILES, "compatible-stub", {**body, "sha256": sha256_hex(canonical_json(body))})


def _run(stack: Stack, run_id: str, profile: str) -> dict[str, Any]:
    stack.db.collection("flow_runs").document(run_id).set(
        {"status": "RUNNING", "steps": {"s": step_data(prompt_id="weekly_report", profile=profile, vars=VARS)}}
    )
    return stack.wait_for(run_id, lambda steps: steps["s"]["status"] in ("SUCCEEDED", "FAILED"))["s"]


def _report(stack: Stack, outputs: dict[str, Any]) -> Any:
    name = outputs["gcs_uri"].split("/", 3)[3]
    return json.loads(stack.bucket.blob(name).download_as_bytes())


def test_one_step_served_by_each_vendor_through_its_sdk(
    stack: Stack, stub: Any, openai_stub: Any, anthropic_stub: Any, run_id: str
) -> None:
    _compatible_profile(stack, openai_stub.base_url)
    openai_stub.script(
        openai_replies.Reply.usage(prompt=1000, completion=500, reasoning=100, cached=200), model="gpt-5-mini"
    )
    anthropic_stub.script(
        anthropic_replies.Reply.usage(input_tokens=800, cache_read_input_tokens=200, output_tokens=500),
        model="claude-sonnet-4-6",
    )
    served = {
        profile: _run(stack, f"{run_id}-{profile}", profile)
        for profile in ("flash-json", "gpt-json", "claude-json", "compatible-stub")
    }

    for profile, step in served.items():
        assert step["status"] == "SUCCEEDED", (profile, step.get("error"))
        jsonschema.validate(_report(stack, step["outputs"]), SCHEMA)
        assert step["outputs"]["llmProfile"] == profile and step["outputs"]["fallbackFrom"] is None
    assert {p: s["outputs"]["provider"] for p, s in served.items()} == {
        "flash-json": "gemini",
        "gpt-json": "openai",
        "claude-json": "anthropic",
        "compatible-stub": "openai_compatible",
    }
    # usage mapped without double counting: OpenAI's reasoning is inside its completion tokens,
    # Anthropic's cache reads are outside its input tokens
    gpt, claude = served["gpt-json"]["outputs"], served["claude-json"]["outputs"]
    assert gpt["usage"] == {
        "promptTokens": 1000,
        "outputTokens": 400,
        "thoughtsTokens": 100,
        "cachedTokens": 200,
        "totalTokens": 1500,
    }
    assert gpt["costUsd"] == pytest.approx((800 * 0.25 + 200 * 0.025 + 500 * 2.00) / 1e6)
    assert claude["usage"] == {
        "promptTokens": 1000,
        "outputTokens": 500,
        "thoughtsTokens": 0,
        "cachedTokens": 200,
        "totalTokens": 1500,
    }
    assert claude["costUsd"] == pytest.approx((800 * 3.00 + 200 * 0.30 + 500 * 15.00) / 1e6)
    assert served["compatible-stub"]["outputs"]["costUsd"] == 0.0
    # each vendor got its own wire format
    gpt_body, compatible_body = (r.body for r in openai_stub.requests)
    assert gpt_body["response_format"]["type"] == "json_schema" and gpt_body["max_completion_tokens"] == 4096
    assert compatible_body["response_format"] == {"type": "json_object", "schema": SCHEMA}
    assert compatible_body["top_k"] == 40 and compatible_body["max_tokens"] == 512
    (claude_request,) = anthropic_stub.requests
    assert claude_request.body["output_config"]["format"]["type"] == "json_schema"
    assert claude_request.body["max_tokens"] == 4096


@pytest.mark.parametrize(
    ("profile", "reply", "code", "retryable"),
    [
        ("gpt-json", openai_replies.Reply.refusal(), "LLM_BLOCKED", False),
        ("gpt-json", openai_replies.Reply.truncated(), "LLM_TRUNCATED", False),
        (
            "gpt-json",
            openai_replies.Reply.http_error(400, "Invalid schema for response_format"),
            "LLM_BAD_REQUEST",
            False,
        ),
        ("gpt-json", openai_replies.Reply.http_error(401, "Incorrect API key"), "LLM_AUTH", False),
        ("claude-json", anthropic_replies.Reply.refusal(), "LLM_BLOCKED", False),
        ("claude-json", anthropic_replies.Reply.max_tokens(), "LLM_TRUNCATED", False),
        ("claude-json", anthropic_replies.Reply.context_exceeded(), "LLM_TRUNCATED", False),
        ("claude-json", anthropic_replies.Reply.http_error(403, "forbidden", "permission_error"), "LLM_AUTH", False),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_each_vendors_faults_land_as_contract_codes(
    stack: Stack,
    openai_stub: Any,
    anthropic_stub: Any,
    run_id: str,
    profile: str,
    reply: Any,
    code: str,
    retryable: bool,
) -> None:
    (openai_stub if profile == "gpt-json" else anthropic_stub).script(reply)
    step = _run(stack, run_id, profile)
    assert step["status"] == "FAILED" and step["error"]["code"] == code
    assert step["error"]["retryable"] is retryable


def test_a_vendor_that_stays_overloaded_is_retried_then_waits(stack: Stack, anthropic_stub: Any, run_id: str) -> None:
    anthropic_stub.script(*[anthropic_replies.Reply.overloaded()] * 50)
    stack.db.collection("flow_runs").document(run_id).set(
        {"status": "RUNNING", "steps": {"s": step_data(prompt_id="weekly_report", profile="claude-json", vars=VARS)}}
    )
    step = stack.wait_for(run_id, lambda steps: steps["s"]["status"] == "RETRY_WAIT")["s"]
    assert step["error"]["code"] == "LLM_UNAVAILABLE" and step["error"]["retryable"] is True
    assert anthropic_stub.calls() > 1  # our retry loop, one request per try (the SDK's retries are off)


def test_a_profile_whose_model_stays_unavailable_falls_back(
    stack: Stack, stub: Any, anthropic_stub: Any, run_id: str
) -> None:
    stub.script(*[gemini_replies.Reply.http_error(503)] * 50, model="gemini-2.5-flash")
    step = _run(stack, run_id, "flash-with-fallback")
    assert step["status"] == "SUCCEEDED", step.get("error")
    outputs = step["outputs"]
    assert (outputs["llmProfile"], outputs["provider"], outputs["fallbackFrom"]) == (
        "claude-json",
        "anthropic",
        "flash-with-fallback",
    )
    assert outputs["llmCalls"] == stub.calls("gemini-2.5-flash") + 1 and anthropic_stub.calls() == 1
    jsonschema.validate(_report(stack, outputs), SCHEMA)
    line = stack.wait_for_log(lambda e: e.get("message") == "llm.fallback" and e.get("runId") == run_id)
    assert (line["fromProfile"], line["toProfile"], line["code"]) == (
        "flash-with-fallback",
        "claude-json",
        "LLM_UNAVAILABLE",
    )
    # rerun: the primary is tried again, and falls back to the same fallback's artifact
    stack.db.collection("flow_runs").document(run_id).update({FieldPath("steps", "s", "status").to_api_repr(): "READY"})
    again = stack.wait_for(run_id, lambda steps: steps["s"]["attempt"] == 2 and steps["s"]["status"] == "SUCCEEDED")
    assert again["s"]["outputs"]["cached"] is True and anthropic_stub.calls() == 1
