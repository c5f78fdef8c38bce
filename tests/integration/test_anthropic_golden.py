"""Golden vectors: recorded Anthropic Messages replies through the real anthropic SDK and our adapter.

Each ``tests/golden/anthropic/*.json`` is one reply (status, headers, body) and what
``AnthropicClient.generate`` must make of it (see ``tests/golden/anthropic/README.md``). The stub
serves it byte for byte on both platforms, the Anthropic API and Vertex AI's rawPredict.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from jsonschema import Draft202012Validator

from devstack.anthropic_stub import AnthropicStub, Reply
from tests.golden_checks import load_vector
from tests.stacks import ROOT
from worker_llm_client.adapters.anthropic_client import AnthropicClient
from worker_llm_client.config import Settings
from worker_llm_client.errors import StepError
from worker_llm_client.execution_models import GenerationSettings, LlmRequest, LlmResult, Turn, WireSchema

pytestmark = pytest.mark.integration

GOLDEN = ROOT / "tests" / "golden" / "anthropic"
SCHEMA: dict[str, Any] = json.loads((ROOT / "schemas" / "weekly_report.json").read_text(encoding="utf-8"))
VECTORS = sorted(GOLDEN.glob("*.json"))
MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-" + "golden"

VECTOR_KEYS = {"name", "description", "status", "headers", "body", "expected"}
RESULT_KEYS = {"outcome", "text", "finishReason", "modelVersion", "responseId", "usage"}
ERROR_KEYS = {"outcome", "code", "retryable", "retryAfter", "message"}
USAGE_KEYS = {"promptTokens", "outputTokens", "thoughtsTokens", "cachedTokens", "totalTokens"}
STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"} | {
    "model_context_window_exceeded"
}
REQUIRED_KINDS = {
    "success": "a schema-valid report in one text block, end_turn",
    "success_with_thinking": "thinking and redacted_thinking blocks before the answer",
    "refusal": "stop_reason refusal with stop_details and no text",
    "max_tokens": "half a JSON document, stop_reason max_tokens",
    "model_context_window_exceeded": "half a JSON document, stop_reason model_context_window_exceeded",
    "usage_with_cache": "cache_read_input_tokens and cache_creation_input_tokens present",
    "rate_limited_429": "429 rate_limit_error with retry-after and anthropic-ratelimit-* headers",
    "overloaded_529": "529 overloaded_error",
    "invalid_request_400": "400 invalid_request_error naming the rejected field",
}


def _reply(vector: dict[str, Any]) -> Reply:
    headers = {k: v for k, v in vector["headers"].items() if k.lower() != "content-type"}
    content_type = vector["headers"].get("content-type", "application/json")
    return Reply.raw(vector["status"], json.dumps(vector["body"]).encode(), content_type, headers)


def _request(provider: str) -> LlmRequest:
    return LlmRequest(
        provider=provider,  # type: ignore[arg-type]
        model=MODEL,
        system_instruction="Write this week's status report as JSON.",
        contents=(Turn("user", "Summarise the status notes for the week."),),
        response_schema=SCHEMA,
        generation=GenerationSettings(max_output_tokens=2048, thinking_budget=1024),
        safety_settings=(),
        timeout_seconds=10.0,
        wire_schema=WireSchema(dialect="anthropic", schema=SCHEMA),
    )


def _usage(result: LlmResult) -> dict[str, int]:
    return result.usage.as_outputs()


@pytest.fixture(params=["anthropic", "anthropic_vertex"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def client(anthropic_stub: AnthropicStub, provider: str) -> Iterator[AnthropicClient]:
    settings = Settings(
        project="it-project",
        location="us-east5",
        anthropic_api_key=KEY,
        anthropic_base_url=anthropic_stub.base_url,
        vertex_base_url=anthropic_stub.base_url,
    )
    built = AnthropicClient(settings, vertex_credentials=Credentials(token="golden-token"))  # type: ignore[no-untyped-call]
    yield built
    built.close()


# ---------------------------------------------------------------- the vectors through the SDK and our adapter
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_outcome(path: Path, anthropic_stub: AnthropicStub, client: AnthropicClient, provider: str) -> None:
    vector = load_vector(path)
    expected = vector["expected"]
    anthropic_stub.script(_reply(vector))

    if expected["outcome"] == "result":
        result = client.generate(_request(provider))
        assert (result.text, result.finish_reason, result.block_reason) == (
            expected["text"],
            expected["finishReason"],
            None,
        )
        assert (result.model_version, result.response_id) == (expected["modelVersion"], expected["responseId"])
        assert _usage(result) == expected["usage"]
        for block in vector["body"]["content"]:
            hidden = block.get("thinking") or block.get("data")
            assert not hidden or hidden not in (result.text or ""), "a thinking block leaked into the answer"
    else:
        with pytest.raises(StepError) as info:
            client.generate(_request(provider))
        error = info.value
        assert (error.code, error.retryable, error.message) == (
            expected["code"],
            expected["retryable"],
            expected["message"],
        )
        assert getattr(error, "retry_after", None) == expected["retryAfter"]
    assert anthropic_stub.calls() == 1  # one request, whatever came back


# ---------------------------------------------------------------- the vectors themselves
def test_golden_anthropic_holds_only_vectors_and_the_readme() -> None:
    strays = sorted(p.name for p in GOLDEN.iterdir() if p.name != "README.md" and p.suffix != ".json")
    assert not strays, f"tests/golden/anthropic holds files that are not vectors: {strays}"
    assert (GOLDEN / "README.md").is_file()


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_is_well_formed(path: Path) -> None:
    vector = load_vector(path)
    assert set(vector) == VECTOR_KEYS, f"keys must be exactly {sorted(VECTOR_KEYS)}"
    assert vector["name"] == path.stem and len(vector["description"].strip()) >= 40
    status, headers, body, expected = vector["status"], vector["headers"], vector["body"], vector["expected"]
    assert isinstance(headers, dict) and all(isinstance(v, str) and k == k.lower() for k, v in headers.items())
    if status == 200:
        _check_message(body, expected)
    else:
        _check_error(status, headers, body, expected)


def _check_message(body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(expected) == RESULT_KEYS and expected["outcome"] == "result"
    assert (body["type"], body["role"]) == ("message", "assistant") and body["stop_reason"] in STOP_REASONS
    assert (expected["finishReason"], expected["modelVersion"], expected["responseId"]) == (
        body["stop_reason"],
        body["model"],
        body["id"],
    )
    texts = [block["text"] for block in body["content"] if block["type"] == "text"]
    assert expected["text"] == ("".join(texts) if texts else None), "text must be the text blocks, concatenated"
    if body["stop_reason"] == "end_turn":
        assert Draft202012Validator(SCHEMA).is_valid(json.loads(expected["text"])), "not a weekly report"
    usage = body["usage"]
    read, created = usage.get("cache_read_input_tokens") or 0, usage.get("cache_creation_input_tokens") or 0
    prompt = usage["input_tokens"] + read + created
    assert set(expected["usage"]) == USAGE_KEYS
    assert expected["usage"] == {
        "promptTokens": prompt,
        "outputTokens": usage["output_tokens"],
        "thoughtsTokens": 0,
        "cachedTokens": read,
        "totalTokens": prompt + usage["output_tokens"],
    }, "usage: prompt = input + cache reads + cache writes, cached = reads, thinking inside output_tokens"


def _check_error(status: int, headers: dict[str, str], body: dict[str, Any], expected: dict[str, Any]) -> None:
    assert set(expected) == ERROR_KEYS and expected["outcome"] == "error"
    assert body["type"] == "error" and set(body["error"]) == {"type", "message"}
    assert expected["message"].startswith(f"HTTP {status} {body['error']['type']}")
    assert expected["retryable"] == (status == 429 or status >= 500)
    assert expected["retryAfter"] == (float(headers["retry-after"]) if "retry-after" in headers else None)


def test_every_required_kind_has_a_vector() -> None:
    missing = {stem: kind for stem, kind in REQUIRED_KINDS.items() if not (GOLDEN / f"{stem}.json").is_file()}
    assert not missing, f"tests/golden/anthropic lacks vectors for: {missing}"
