"""Golden vectors: recorded Gemini ``generateContent`` bodies through the real SDK, our adapter and validation.

Each ``tests/golden/*.json`` is one exact response body plus the outcome it must produce (see
``tests/golden/README.md``). The stub serves the body byte for byte, ``GeminiClient.generate`` turns it
into an ``LlmResult`` and ``validate_reply`` into a report or an error; every step is asserted.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.gemini_stub import Reply
from tests.golden_checks import MIN_LEAK_LENGTH, STRING_LITERAL, check_judged, load_vector, schema_strings, strict_loads
from tests.stacks import ROOT
from worker_llm_client.adapters.gemini_client import GeminiClient
from worker_llm_client.config import Settings
from worker_llm_client.core.output_validation import load_schema
from worker_llm_client.execution_models import GenerationSettings, LlmRequest, LlmResult, Turn

pytestmark = pytest.mark.integration

GOLDEN = ROOT / "tests" / "golden"
SCHEMA_TEXT = (ROOT / "schemas" / "weekly_report.json").read_text(encoding="utf-8")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_TEXT)
VECTORS = sorted(GOLDEN.glob("*.json"))

VECTOR_KEYS = {"name", "description", "response", "expected"}
EXPECTED_KEYS = {"outcome", "code", "retryable", "finishReason", "blockReason", "usage", "report"}
# What a 200 response can turn into: validate_reply's errors (HTTP errors never reach it).
REPLY_CODES = {"LLM_BLOCKED", "LLM_TRUNCATED", "OUTPUT_NOT_JSON", "OUTPUT_SCHEMA_MISMATCH"}
# expected.usage key -> usageMetadata key (a missing count is 0)
USAGE_FIELDS = {
    "promptTokens": "promptTokenCount",
    "outputTokens": "candidatesTokenCount",
    "thoughtsTokens": "thoughtsTokenCount",
    "cachedTokens": "cachedContentTokenCount",
    "totalTokens": "totalTokenCount",
}
# Every recorded shape the suite must cover: file stem -> what it is.
REQUIRED_KINDS = {
    "success": "schema-valid report, finishReason STOP",
    "success_with_thoughts": "a thought part before the answer; the thought is not in the report",
    "prompt_blocked_safety": "promptFeedback.blockReason SAFETY, no candidates",
    "finish_safety": "candidate finishReason SAFETY",
    "finish_recitation": "candidate finishReason RECITATION",
    "finish_blocklist": "candidate finishReason BLOCKLIST",
    "finish_prohibited_content": "candidate finishReason PROHIBITED_CONTENT",
    "finish_spii": "candidate finishReason SPII",
    "truncated_max_tokens": "MAX_TOKENS with half a JSON document",
    "empty_parts": "STOP with parts: []",
    "no_candidates": "no candidates and no promptFeedback",
    "prose_not_json": "prose instead of JSON",
    "fenced_json": "a ```json fenced block (strict parse)",
    "schema_missing_required": "a required property missing",
    "schema_extra_keys": "undeclared properties (additionalProperties false)",
    "schema_wrong_enum": "a value outside an enum",
    "unicode_content": "non-ASCII, emoji and RTL strings that round-trip exactly",
    "split_text_parts": "the answer split across two text parts",
    "cached_content_tokens": "cachedContentTokenCount present",
}


# ---------------------------------------------------------------- helpers
def _parts(response: dict[str, Any]) -> list[dict[str, Any]]:
    """Every part of every candidate, thought parts included."""
    found: list[dict[str, Any]] = []
    for candidate in response.get("candidates") or []:
        found.extend((candidate.get("content") or {}).get("parts") or [])
    return found


def _answer_parts(response: dict[str, Any]) -> list[str]:
    candidates = response.get("candidates") or []
    parts = (candidates[0].get("content") or {}).get("parts") or [] if candidates else []
    return [p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")]


def _json_strings(node: Any) -> set[str]:
    """Every string value and key in a parsed document."""
    if isinstance(node, dict):
        return set(node) | {s for value in node.values() for s in _json_strings(value)}
    if isinstance(node, list):
        return {s for item in node for s in _json_strings(item)}
    return {node} if isinstance(node, str) else set()


def _model_strings(response: dict[str, Any]) -> set[str]:
    """Model output that must never appear in an error message: each text part whole, its lines, the
    string literals in it (also of unfinished or fenced JSON) and, when it parses, every string in it."""
    found: set[str] = set()
    for part in _parts(response):
        text = part.get("text")
        if not isinstance(text, str):
            continue
        found.add(text.strip())
        found.update(line.strip() for line in text.splitlines())
        for literal in STRING_LITERAL.findall(text):
            try:
                found.add(json.loads(literal))
            except ValueError:
                found.add(literal)
        with contextlib.suppress(ValueError):
            found |= _json_strings(json.loads(text))
    return {s for s in found if len(s) >= MIN_LEAK_LENGTH} - schema_strings(SCHEMA)


def _usage(result: LlmResult) -> dict[str, int]:
    usage = result.usage
    return usage.as_outputs()


def _request() -> LlmRequest:
    return LlmRequest(
        provider="gemini",
        model="gemini-2.5-flash",
        system_instruction="Write this week's status report as JSON.",
        contents=(Turn("user", "Summarise the status notes for the week."),),
        response_schema=load_schema(SCHEMA_TEXT).schema,
        generation=GenerationSettings(temperature=0.2, max_output_tokens=1024),
        safety_settings=(),
        timeout_seconds=10.0,
    )


@pytest.fixture
def client(stub: Any) -> Iterator[GeminiClient]:
    built = GeminiClient(Settings(project="p", gemini_api_key="k", gemini_base_url=stub.base_url))
    yield built
    built.close()


# ---------------------------------------------------------------- the vectors through our code
@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_outcome(path: Path, stub: Any, client: GeminiClient) -> None:
    vector = load_vector(path)
    response, expected = vector["response"], vector["expected"]
    stub.script(Reply.raw(200, json.dumps(response).encode()))

    result = client.generate(_request())

    [sent] = stub.requests
    assert sent.body["generationConfig"]["responseJsonSchema"] == SCHEMA
    assert (result.finish_reason, result.block_reason) == (expected["finishReason"], expected["blockReason"])
    assert _usage(result) == expected["usage"]
    assert (result.model_version, result.response_id) == (response.get("modelVersion"), response.get("responseId"))
    for part in _parts(response):
        if part.get("thought") and result.text is not None:
            assert part["text"].strip() not in result.text, "a thought part leaked into the answer text"

    check_judged(path.name, result, SCHEMA_TEXT, expected, _model_strings(response))


# ---------------------------------------------------------------- the vectors themselves
def test_golden_holds_only_vectors_and_the_readme() -> None:
    strays = sorted(
        p.name
        for p in GOLDEN.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != "README.md" and p.suffix != ".json"
    )
    assert not strays, f"tests/golden holds files that are not vectors (*.json): {strays}"
    assert all(p.is_file() for p in VECTORS)


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_is_well_formed(path: Path) -> None:
    vector = load_vector(path)  # strict: a NaN literal or a duplicate key in the file fails here
    assert isinstance(vector, dict) and set(vector) == VECTOR_KEYS, f"keys must be exactly {sorted(VECTOR_KEYS)}"
    assert vector["name"] == path.stem, "name must be the file's stem"
    assert isinstance(vector["description"], str) and len(vector["description"].strip()) >= 20

    response, expected = vector["response"], vector["expected"]
    assert isinstance(response, dict) and response, "response must be the generateContent body (an object)"
    candidates = response.get("candidates", [])
    assert isinstance(candidates, list) and all(isinstance(c, dict) for c in candidates)
    for part in _parts(response):
        assert isinstance(part, dict) and isinstance(part.get("text"), str), "every part needs a text"
    meta = response.get("usageMetadata")
    assert isinstance(meta, dict), "response.usageMetadata is required"
    counts = {key: meta.get(key, 0) for key in [*USAGE_FIELDS.values(), "toolUsePromptTokenCount"]}
    assert all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts.values())
    # the API's own arithmetic: cached tokens are part of the prompt count, total is the sum of the rest
    assert counts["totalTokenCount"] == sum(
        counts[k] for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount", "toolUsePromptTokenCount")
    ), "usageMetadata.totalTokenCount must equal prompt + candidates + thoughts (+ toolUsePrompt)"
    assert counts["cachedContentTokenCount"] <= counts["promptTokenCount"]

    assert isinstance(expected, dict) and set(expected) == EXPECTED_KEYS, f"expected needs {sorted(EXPECTED_KEYS)}"
    assert expected["outcome"] in ("report", "error")
    assert isinstance(expected["retryable"], bool)
    first = candidates[0] if candidates else {}
    assert expected["finishReason"] == first.get("finishReason"), "finishReason must be the first candidate's"
    assert expected["blockReason"] == (response.get("promptFeedback") or {}).get("blockReason")
    assert isinstance(expected["usage"], dict) and set(expected["usage"]) == set(USAGE_FIELDS)
    assert expected["usage"] == {ours: meta.get(theirs, 0) for ours, theirs in USAGE_FIELDS.items()}, (
        "expected.usage must be response.usageMetadata's counts (a missing count is 0)"
    )

    if expected["outcome"] == "report":
        assert expected["code"] is None and expected["retryable"] is False
        report = expected["report"]
        assert isinstance(report, dict), "a report outcome needs expected.report"
        problems = [e.message for e in Draft202012Validator(SCHEMA).iter_errors(report)]
        assert not problems, f"expected.report does not match schemas/weekly_report.json: {problems}"
        assert report == strict_loads("".join(_answer_parts(response))), (
            "expected.report must be the first candidate's non-thought text parts, concatenated and parsed"
        )
    else:
        assert expected["code"] in REPLY_CODES, f"code must be one of {sorted(REPLY_CODES)}"
        assert expected["report"] is None


def test_every_required_kind_has_a_vector() -> None:
    missing = {stem: kind for stem, kind in REQUIRED_KINDS.items() if not (GOLDEN / f"{stem}.json").is_file()}
    assert not missing, f"tests/golden lacks vectors for: {missing}"
