"""Golden vectors of Chat Completions replies: recorded bodies through the real openai SDK, our
adapter and validation.

Each ``tests/golden/openai/*.json`` is one response (status, headers, exact body) plus what it must
become (see ``tests/golden/openai/README.md``). The OpenAI stub serves it byte for byte,
``OpenAiClient.generate`` turns it into an ``LlmResult`` or a step error, and ``validate_reply`` the
result into a report or an error; every step is asserted, and no model output may reach a message.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.openai_stub import OpenAiStub, Reply
from tests.golden_checks import MIN_LEAK_LENGTH, STRING_LITERAL, check_judged, load_vector, schema_strings
from tests.stacks import ROOT
from worker_llm_client.adapters.openai_client import OpenAiClient
from worker_llm_client.config import Settings
from worker_llm_client.core.output_validation import load_schema
from worker_llm_client.errors import StepError
from worker_llm_client.execution_models import (
    Dialect,
    Endpoint,
    GenerationSettings,
    LlmRequest,
    LlmResult,
    Turn,
    WireSchema,
)

pytestmark = pytest.mark.integration

GOLDEN = ROOT / "tests" / "golden" / "openai"
SCHEMA_TEXT = (ROOT / "schemas" / "weekly_report.json").read_text(encoding="utf-8")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_TEXT)
VECTORS = sorted(GOLDEN.glob("*.json"))
REPLIES = [p for p in VECTORS if json.loads(p.read_text(encoding="utf-8")).get("status") == 200]  # 200s: validated
KEY = "sk-" + "golden-0123456789"

VECTOR_KEYS = {"name", "description", "provider", "structuredOutput", "status", "headers", "response", "expected"}
EXPECTED_KEYS = {"result", "outcome", "code", "retryable", "retryAfter", "messageIncludes", "report"}
RESULT_KEYS = {"text", "finishReason", "blockReason", "modelVersion", "responseId", "usage"}
USAGE_KEYS = {"promptTokens", "outputTokens", "thoughtsTokens", "cachedTokens", "totalTokens"}
# what validate_reply makes of a 200, and what the adapter makes of an HTTP error
REPLY_CODES = {"LLM_BLOCKED", "LLM_TRUNCATED", "OUTPUT_NOT_JSON", "OUTPUT_SCHEMA_MISMATCH"}
HTTP_CODES = {"LLM_RATE_LIMITED", "LLM_UNAVAILABLE", "LLM_TIMEOUT", "LLM_AUTH", "LLM_BAD_REQUEST"}
# the dialect a compatible endpoint's structuredOutput asks for (the openai provider: strict)
DIALECTS: dict[str, Dialect] = {
    "json_schema": "openai_strict",
    "json_object_schema": "json_object_schema",
    "json_object": "json_object",
}
REQUIRED_KINDS = {
    "success": "schema-valid report, finish_reason stop",
    "success_reasoning_cached": "reasoning_tokens inside completion_tokens, cached_tokens inside prompt_tokens",
    "refusal": "message.refusal set, content null",
    "truncated_length": "finish_reason length with half a document",
    "truncated_reasoning_only": "the whole budget spent on reasoning, empty content",
    "content_filter": "finish_reason content_filter, content null",
    "tool_calls_only": "tool_calls and no content",
    "usage_absent": "no usage object",
    "rate_limited_tokens": "429 body and x-ratelimit-* headers",
    "invalid_schema_400": "400 invalid_request_error for the schema",
    "server_error_500": "500 server_error",
}


# ---------------------------------------------------------------- helpers
def _message(response: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = response["choices"][0].get("message") or {}
    return message


def _answer(message: dict[str, Any]) -> str | None:
    """The text the rules call the answer, worked out independently of the adapter."""
    if message.get("refusal"):
        return None
    content = message.get("content")
    if isinstance(content, list):
        texts = [p["text"] for p in content if p.get("type") == "text"]
        return "".join(texts) if texts else None
    return content if isinstance(content, str) else None


def _strings(node: Any) -> set[str]:
    """Every string value below ``node`` but roles and part types."""
    if isinstance(node, dict):
        return {s for key, value in node.items() if key not in ("role", "type") for s in _strings(value)}
    if isinstance(node, list):
        return {s for item in node for s in _strings(item)}
    return {node} if isinstance(node, str) else set()


def _model_strings(response: dict[str, Any]) -> set[str]:
    """Model output that must never appear in an error message: every string of every choice's
    message (content, parts, refusal, reasoning, tool arguments), its lines, its string literals and,
    when it parses, every string in it."""
    found: set[str] = set()
    for choice in response.get("choices") or []:
        for text in _strings(choice.get("message")):
            found |= {text.strip(), *(line.strip() for line in text.splitlines())}
            for literal in STRING_LITERAL.findall(text):
                with contextlib.suppress(ValueError):
                    found.add(json.loads(literal))
            with contextlib.suppress(ValueError):
                found |= _strings(json.loads(text))
    return {s for s in found if len(s) >= MIN_LEAK_LENGTH} - schema_strings(SCHEMA)


def _result(result: LlmResult) -> dict[str, Any]:
    usage = result.usage
    return {
        "text": result.text,
        "finishReason": result.finish_reason,
        "blockReason": result.block_reason,
        "modelVersion": result.model_version,
        "responseId": result.response_id,
        "usage": usage.as_outputs(),
    }


def _request(vector: dict[str, Any], base_url: str) -> LlmRequest:
    structured = vector["structuredOutput"]
    dialect = DIALECTS[structured or "json_schema"]
    compatible = vector["provider"] == "openai_compatible"
    return LlmRequest(
        provider=vector["provider"],
        model="golden-model",
        system_instruction="Write this week's status report as JSON.",
        contents=(Turn("user", "Summarise the status notes for the week."),),
        response_schema=load_schema(SCHEMA_TEXT).schema,
        generation=GenerationSettings(temperature=0.2, max_output_tokens=1024),
        safety_settings=(),
        timeout_seconds=10.0,
        endpoint=Endpoint(base_url, structured) if compatible else None,
        wire_schema=WireSchema(
            dialect, None if dialect == "json_object" else SCHEMA, strict=dialect == "openai_strict"
        ),
    )


@pytest.fixture
def client(openai_stub: OpenAiStub) -> Iterator[OpenAiClient]:
    built = OpenAiClient(Settings(project="p", openai_api_key=KEY, openai_base_url=openai_stub.base_url))
    yield built
    built.close()


def _serve(stub: OpenAiStub, vector: dict[str, Any]) -> None:
    body = json.dumps(vector["response"], ensure_ascii=False).encode()
    stub.script(Reply.raw(vector["status"], body, headers=vector["headers"]))


# ---------------------------------------------------------------- the vectors through our code
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_through_the_adapter(path: Path, openai_stub: OpenAiStub, client: OpenAiClient) -> None:
    vector = load_vector(path)
    expected = vector["expected"]
    _serve(openai_stub, vector)
    request = _request(vector, openai_stub.base_url)

    if expected["result"] is None:
        with pytest.raises(StepError) as info:
            client.generate(request)
        error = info.value
        got = (error.code, error.retryable, getattr(error, "retry_after", None))
        assert got == (expected["code"], expected["retryable"], expected["retryAfter"]), error.message
        assert expected["messageIncludes"] in error.message
        assert KEY not in error.message
    else:
        assert _result(client.generate(request)) == expected["result"]
    assert openai_stub.calls() == 1


@pytest.mark.parametrize("path", REPLIES, ids=[p.stem for p in REPLIES])
def test_vector_outcome(path: Path, openai_stub: OpenAiStub, client: OpenAiClient) -> None:
    vector = load_vector(path)
    expected = vector["expected"]
    _serve(openai_stub, vector)
    result = client.generate(_request(vector, openai_stub.base_url))

    error = check_judged(path.name, result, SCHEMA_TEXT, expected, _model_strings(vector["response"]))
    if error is not None:
        assert expected["messageIncludes"] is None or expected["messageIncludes"] in error.message


# ---------------------------------------------------------------- the vectors themselves
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_is_well_formed(path: Path) -> None:
    vector = load_vector(path)
    assert set(vector) == VECTOR_KEYS, f"keys must be exactly {sorted(VECTOR_KEYS)}"
    assert vector["name"] == path.stem, "name must be the file's stem"
    assert isinstance(vector["description"], str) and len(vector["description"].strip()) >= 20
    assert vector["provider"] in ("openai", "openai_compatible")
    assert (vector["structuredOutput"] is None) == (vector["provider"] == "openai"), "structuredOutput: compatible only"
    assert vector["structuredOutput"] in (None, *DIALECTS)
    assert isinstance(vector["headers"], dict) and all(isinstance(v, str) for v in vector["headers"].values())
    expected, response, status = vector["expected"], vector["response"], vector["status"]
    assert isinstance(expected, dict) and set(expected) == EXPECTED_KEYS, f"expected needs {sorted(EXPECTED_KEYS)}"
    assert expected["outcome"] in ("report", "error") and isinstance(expected["retryable"], bool)
    if status == 200:
        _check_reply(response, expected)
    else:
        assert status >= 400 and isinstance(response, dict) and isinstance(response.get("error"), dict)
        assert {"message", "type", "param", "code"} <= set(response["error"]), "OpenAI's error object"
        assert expected["result"] is None and expected["report"] is None and expected["outcome"] == "error"
        assert expected["code"] in HTTP_CODES and isinstance(expected["messageIncludes"], str)


def _check_reply(response: Any, expected: dict[str, Any]) -> None:
    assert isinstance(response, dict) and isinstance(response.get("choices"), list) and response["choices"]
    result, message = expected["result"], _message(response)
    assert isinstance(result, dict) and set(result) == RESULT_KEYS and set(result["usage"]) == USAGE_KEYS
    assert result["text"] == _answer(message), "text must be the content (the text parts joined); none on a refusal"
    assert result["blockReason"] == ("refusal" if message.get("refusal") else None)
    assert result["finishReason"] == response["choices"][0]["finish_reason"]
    assert (result["modelVersion"], result["responseId"]) == (response.get("model"), response.get("id"))
    usage = response.get("usage") or {}
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0)
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
    assert usage.get("total_tokens", prompt + completion) == prompt + completion, "OpenAI's own arithmetic"
    assert reasoning <= completion and cached <= prompt
    assert result["usage"] == {
        "promptTokens": prompt,
        "outputTokens": completion - reasoning,
        "thoughtsTokens": reasoning,
        "cachedTokens": cached,
        "totalTokens": prompt + completion,
    }, "usage: reasoning is taken out of completion_tokens, cached stays inside prompt_tokens"
    assert expected["retryAfter"] is None
    if expected["outcome"] == "report":
        assert expected["code"] is None and expected["retryable"] is False
        report = expected["report"]
        assert not [e.message for e in Draft202012Validator(SCHEMA).iter_errors(report)]
        assert report == json.loads(result["text"]), "report must be the parsed text"
    else:
        assert expected["code"] in REPLY_CODES and expected["report"] is None


def test_golden_openai_holds_only_vectors_and_the_readme() -> None:
    strays = sorted(
        p.name for p in GOLDEN.iterdir() if not p.name.startswith(".") and p.name != "README.md" and p.suffix != ".json"
    )
    assert not strays, f"tests/golden/openai holds files that are not vectors: {strays}"


def test_every_required_kind_has_a_vector() -> None:
    missing = {stem: kind for stem, kind in REQUIRED_KINDS.items() if not (GOLDEN / f"{stem}.json").is_file()}
    assert not missing, f"tests/golden/openai lacks vectors for: {missing}"
