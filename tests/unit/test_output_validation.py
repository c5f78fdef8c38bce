from __future__ import annotations

import json
import sys

import pytest

from tests.builders import REPORT_SCHEMA
from tests.fakes import reply
from worker_llm_client.core.output_validation import (
    MAX_REPLY_DEPTH,
    load_schema,
    parse_report,
    reply_outcome,
    report_bytes,
    validate_reply,
)
from worker_llm_client.errors import LlmBlocked, LlmTruncated, OutputNotJson, OutputSchemaMismatch, SchemaInvalid
from worker_llm_client.execution_models import LlmResult

SCHEMA = load_schema(json.dumps(REPORT_SCHEMA))
GOOD = '{"title": "t", "severity": "low", "findings": ["a"]}'


def test_valid_reply_is_the_report() -> None:
    assert validate_reply(reply(GOOD), SCHEMA) == {"title": "t", "severity": "low", "findings": ["a"]}


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [
        (reply(GOOD, block_reason="SAFETY", finish_reason=None), LlmBlocked, "blockReason=SAFETY"),
        (reply(None, finish_reason="RECITATION"), LlmBlocked, "finishReason=RECITATION"),
        (reply('{"title": "t", "sev', finish_reason="MAX_TOKENS"), LlmTruncated, "MAX_TOKENS"),
        (reply(None), OutputNotJson, "no text"),
        (reply("   "), OutputNotJson, "no text"),
        (reply("```json\n" + GOOD + "\n```"), OutputNotJson, "not JSON"),
        (reply('{"title": "t", "severity": "urgent", "findings": []}'), OutputSchemaMismatch, "2 schema violation"),
        (
            reply('{"title": "t", "severity": "low", "findings": ["a"], "extra": 1}'),
            OutputSchemaMismatch,
            "1 unexpected",
        ),
        (reply('{"severity": "low", "findings": ["a"]}'), OutputSchemaMismatch, r'required \["title"\]'),
        (
            reply('{"title": 3, "severity": "low", "findings": ["a"]}'),
            OutputSchemaMismatch,
            r"\$.title: type string \(got int\)",
        ),
    ],
)
def test_bad_replies_are_classified(result: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        validate_reply(result, SCHEMA)  # type: ignore[arg-type]


def test_mismatch_message_does_not_echo_model_values() -> None:
    with pytest.raises(OutputSchemaMismatch) as info:
        validate_reply(reply('{"title": "t", "severity": "TOP-SECRET-VALUE", "findings": ["a"]}'), SCHEMA)
    assert "TOP-SECRET-VALUE" not in info.value.message
    assert "$.severity: enum" in info.value.message


def test_locally_enforced_keywords() -> None:
    schema = load_schema(
        json.dumps({"type": "object", "properties": {"id": {"type": "string", "pattern": "^[A-Z]{3}$"}}})
    )
    with pytest.raises(OutputSchemaMismatch, match="pattern"):
        validate_reply(reply('{"id": "abcd"}'), schema)


@pytest.mark.parametrize(
    ("text", "message"), [("{", "not valid JSON"), ("[]", "JSON object"), ('{"type": 12}', "draft 2020-12")]
)
def test_invalid_schemas(text: str, message: str) -> None:
    with pytest.raises(SchemaInvalid, match=message):
        load_schema(text)


@pytest.mark.parametrize("text", [b'{"type": "object"}', None])
def test_a_schema_that_is_not_text_is_schema_invalid(text: object) -> None:
    with pytest.raises(SchemaInvalid, match=r"^outputSchema must be JSON text$") as info:
        load_schema(text)
    assert info.value.code == "SCHEMA_INVALID"


def test_a_long_rule_is_cut_in_the_message() -> None:
    options = [f"option-{i}-" + "x" * 40 for i in range(5)]
    output = load_schema(json.dumps({"type": "string", "enum": options}))
    with pytest.raises(OutputSchemaMismatch) as info:
        parse_report('"other"', output)
    assert info.value.message == "1 schema violation(s): $: enum " + json.dumps(options)[:119] + "…"


def test_schema_is_compiled_once() -> None:
    assert load_schema(json.dumps(REPORT_SCHEMA)) is SCHEMA


def test_keys_the_schema_does_not_declare_are_masked() -> None:
    schema = load_schema(
        json.dumps(
            {"type": "object", "additionalProperties": {"type": "integer"}, "properties": {"n": {"type": "integer"}}}
        )
    )
    with pytest.raises(OutputSchemaMismatch) as info:
        validate_reply(reply('{"n": 1, "Patient John Doe": "x"}'), schema)
    assert "John" not in info.value.message and "$.*: type integer" in info.value.message


@pytest.mark.parametrize("ref", ["#/$defs/missing", "#/properties/nope", "https://example.com/schema.json"])
def test_unresolvable_refs_are_schema_invalid_before_any_model_call(ref: str) -> None:
    with pytest.raises(SchemaInvalid, match=r"\$ref"):
        load_schema(json.dumps({"type": "object", "properties": {"x": {"$ref": ref}}}))


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_not_json(constant: str) -> None:
    text = f'{{"title": "t", "severity": "low", "findings": ["a"], "score": {constant}}}'
    with pytest.raises(OutputNotJson, match="is not a JSON value"):
        validate_reply(reply(text), SCHEMA)


def test_model_armor_is_a_block_not_bad_output() -> None:
    with pytest.raises(LlmBlocked, match="MODEL_ARMOR"):
        validate_reply(reply(None, finish_reason="MODEL_ARMOR"), SCHEMA)


SECRET = "TOP-SECRET-REPLY-TEXT"


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_nested(1000), "nested deeper than 64 levels at character 64"),
        (f'{{"title": "{SECRET}", "x": {_nested(100_000)}}}', r"nested deeper than 64 levels at character \d+;"),
        (f'{{"title": "{SECRET}", "n": {"9" * 5000}}}', "an integer with more than 4300 digits"),
        (f'{{"title": "{SECRET}", "n": -{"9" * 4301}}}', "an integer with more than 4300 digits"),
        (f'{{"title": "{SECRET}", "n": 1e400}}', "beyond the range of a 64-bit float"),
        (f'{{"title": "{SECRET}\\ud800", "severity": "low", "findings": ["a"]}}', "lone UTF-16 surrogate"),
        (f'{{"title": "{SECRET}", "\\udfff": 1}}', "lone UTF-16 surrogate"),
        (f'{{"title": "{SECRET}\ud83d", "severity": "low", "findings": ["a"]}}', "lone UTF-16 surrogate"),
    ],
    ids=[
        "1000-deep",
        "100000-deep",
        "5000-digits",
        "negative-4301-digits",
        "1e400",
        "surrogate",
        "surrogate-key",
        "raw",
    ],
)
def test_hostile_replies_are_not_json_and_never_quoted(text: str, message: str) -> None:
    with pytest.raises(OutputNotJson, match=message) as info:
        validate_reply(reply(text), SCHEMA)
    assert info.value.code == "OUTPUT_NOT_JSON"
    assert SECRET not in info.value.message and SECRET not in info.value.feedback
    assert f"{len(text)} characters" in info.value.message


@pytest.mark.parametrize(
    ("text", "number"), [("0.5", 0.5), ("-2.5e-3", -0.0025), ("1e308", 1e308), ("1E+2", 100.0), ("12", 12)]
)
def test_finite_numbers_are_the_report(text: str, number: float) -> None:
    report = parse_report(text, load_schema('{"type": "number"}'))
    assert report == number and type(report) is type(number)


def test_an_integer_over_a_lowered_interpreter_limit_is_not_json_rather_than_a_crash() -> None:
    """PYTHONINTMAXSTRDIGITS may set CPython's int/str limit below MAX_REPLY_INT_DIGITS."""
    text = f'{{"title": "{SECRET}", "n": {"9" * 1000}}}'
    message = rf"^the reply is not JSON \(it cannot be parsed \(ValueError\); {len(text)} characters\)$"
    default = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)  # CPython's lowest
    try:
        with pytest.raises(OutputNotJson, match=message) as info:
            parse_report(text, SCHEMA)
    finally:
        sys.set_int_max_str_digits(default)
    assert info.value.code == "OUTPUT_NOT_JSON" and SECRET not in info.value.message


@pytest.mark.parametrize("text", [["a", 1], [], 42, b'{"title": "t"}'])
def test_a_reply_text_that_is_not_a_string_is_not_json(text: object) -> None:
    with pytest.raises(OutputNotJson):
        validate_reply(reply(text), SCHEMA)  # type: ignore[arg-type]


def test_the_deepest_reply_allowed_validates_against_a_recursive_schema() -> None:
    tree = load_schema(json.dumps({"type": "array", "items": {"$ref": "#"}}))
    assert parse_report(_nested(MAX_REPLY_DEPTH), tree) is not None
    with pytest.raises(OutputNotJson, match="nested deeper"):
        parse_report(_nested(MAX_REPLY_DEPTH + 1), tree)


def test_a_reply_too_deep_for_its_schema_is_not_json_rather_than_a_recursion_error() -> None:
    wrapped: dict[str, object] = {"type": "array", "items": {"$ref": "#"}}
    for _ in range(14):  # in-place applicators nested as deep as a schema may go, around a recursion
        wrapped = {"allOf": [wrapped]}
    output = load_schema(json.dumps(wrapped))
    with pytest.raises(OutputNotJson, match="too deeply to validate"):
        parse_report(_nested(MAX_REPLY_DEPTH), output)


def test_every_returned_report_encodes_as_it_is_stored() -> None:
    text = '{"title": "caf\\u00e9 \\ud83d\\ude00 \U0001f600", "severity": "low", "findings": ["\\u0000"]}'
    report = parse_report(text, SCHEMA)
    assert json.loads(report_bytes(report)) == report
    assert report_bytes(report) == json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8")


def test_a_finish_reason_that_is_not_a_string_is_not_json_rather_than_a_crash() -> None:
    from tests.fakes import reply
    from worker_llm_client.core.output_validation import load_schema, validate_reply
    from worker_llm_client.errors import OutputNotJson

    with pytest.raises(OutputNotJson):
        validate_reply(reply(finish_reason=["SAFETY"]), load_schema('{"type": "object"}'))


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (reply(), "OK"),
        (reply("not json"), "OK"),  # judged afterwards: output.invalid, OUTPUT_NOT_JSON
        (reply(None, finish_reason="STOP"), "OK"),
        (reply(None, block_reason="SAFETY", finish_reason=None), "LLM_BLOCKED"),
        (reply("{", finish_reason="RECITATION"), "LLM_BLOCKED"),
        (reply('{"title": "t', finish_reason="MAX_TOKENS"), "LLM_TRUNCATED"),
    ],
)
def test_a_requests_outcome_is_the_models_verdict_on_its_reply(result: LlmResult, outcome: str) -> None:
    assert reply_outcome(result) == outcome


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [
        (
            reply(f'{{"title": "{SECRET}', finish_reason="length"),
            LlmTruncated,
            r"\(finishReason=length\); raise maxOutputTokens",
        ),
        (reply(f'{{"title": "{SECRET}', finish_reason="max_tokens"), LlmTruncated, r"finishReason=max_tokens"),
        (
            reply(f'{{"title": "{SECRET}', finish_reason="model_context_window_exceeded"),
            LlmTruncated,
            r"filled the model's context window \(finishReason=model_context_window_exceeded\); shorten the prompt",
        ),
        (
            reply(SECRET, finish_reason="content_filter"),
            LlmBlocked,
            r"blocked by the model \(finishReason=content_filter\)",
        ),
        (reply(SECRET, finish_reason="refusal"), LlmBlocked, r"blocked by the model \(finishReason=refusal\)"),
        (
            reply(None, block_reason="refusal", finish_reason="stop"),
            LlmBlocked,
            r"^the model refused to answer \(blockReason=refusal\)$",
        ),
        (reply(GOOD, finish_reason="LENGTH"), None, ""),  # spellings are each provider's own: no folding
    ],
    ids=[
        "openai-length",
        "anthropic-max-tokens",
        "anthropic-context",
        "openai-filter",
        "anthropic-refusal",
        "openai-refusal",
        "case",
    ],
)
def test_every_providers_blocks_and_truncations_are_classified_alike(
    result: LlmResult, error: type[Exception] | None, message: str
) -> None:
    if error is None:
        assert validate_reply(result, SCHEMA) and reply_outcome(result) == "OK"
        return
    with pytest.raises(error, match=message) as info:
        validate_reply(result, SCHEMA)
    assert SECRET not in str(info.value) and reply_outcome(result) == info.value.code  # type: ignore[attr-defined]


OPTIONAL = load_schema(
    json.dumps(
        {
            "type": "object",
            "properties": {
                "title": {"type": "string"},
                "note": {"type": "string"},
                "tags": {"type": "array", "items": {"$ref": "#/$defs/tag"}},
            },
            "required": ["title"],
            "additionalProperties": False,
            "$defs": {
                "tag": {"type": "object", "properties": {"k": {"type": "string"}}, "additionalProperties": False}
            },
        }
    )
)


def test_nulls_added_for_strict_mode_are_dropped_before_validating() -> None:
    text = '{"title": "t", "note": null, "tags": [{"k": null}, {"k": "x"}]}'
    assert validate_reply(reply(text), OPTIONAL, nulls_added=True) == {"title": "t", "tags": [{}, {"k": "x"}]}
    assert parse_report(text, OPTIONAL, nulls_added=True) == {"title": "t", "tags": [{}, {"k": "x"}]}
    with pytest.raises(OutputSchemaMismatch, match=r"\$.note: type string \(got NoneType\)"):
        validate_reply(reply(text), OPTIONAL)  # a provider that was sent the schema as is: null is wrong


def test_a_null_the_schema_requires_is_still_a_violation_after_restoring() -> None:
    with pytest.raises(OutputSchemaMismatch, match=r"\$.title: type string \(got NoneType\)"):
        validate_reply(reply('{"title": null}'), OPTIONAL, nulls_added=True)


def test_the_repair_turn_quotes_the_feedback_or_else_the_message() -> None:
    from worker_llm_client.core.output_validation import repair_instruction

    assert repair_instruction(OutputNotJson("m", "it is not JSON")).startswith(
        "Your previous reply cannot be used: it is not JSON\nReply again with only the corrected JSON object"
    )
    assert repair_instruction(OutputNotJson("the message", "")).startswith(
        "Your previous reply cannot be used: the message\n"
    )
