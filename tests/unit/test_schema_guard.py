"""Output schemas stay offline, bounded and linear: remote refs, nested ids, depth, size, RE2 patterns."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.fakes import reply
from tests.schema_host import SchemaHost
from tests.schema_host import schema_host as serve_schemas
from worker_llm_client.core.output_validation import OutputSchema, load_schema, parse_report, validate_reply
from worker_llm_client.core.schema_guard import MAX_SCHEMA_CHARS, MAX_SCHEMA_DEPTH, build_validator, nesting_overflow
from worker_llm_client.errors import OutputSchemaMismatch, SchemaInvalid

HOSTILE = "^([a-z0-9]+-?)+$"  # Python's re: ~1 s on 25 characters, doubling per character


@pytest.fixture
def schema_host() -> Iterator[SchemaHost]:
    with serve_schemas() as server:
        yield server


def _url(server: SchemaHost) -> str:
    return server.url


REMOTE: dict[str, Callable[[str], dict[str, Any]]] = {
    "plain-ref": lambda url: {"type": "object", "properties": {"a": {"$ref": f"{url}/s.json"}}},
    "ref-under-a-property-named-default": lambda url: {
        "type": "object",
        "properties": {"default": {"$ref": f"{url}/d.json"}},
    },
    "ref-under-a-property-named-examples": lambda url: {
        "type": "object",
        "properties": {"examples": {"$ref": f"{url}/e.json"}},
    },
    "dynamic-ref": lambda url: {"type": "object", "properties": {"a": {"$dynamicRef": f"{url}/d.json#meta"}}},
    "nested-id-relative-ref": lambda url: {
        "type": "object",
        "properties": {"a": {"$id": f"{url}/a.json", "$ref": "b.json"}},
    },
    "local-ref-into-data": lambda url: {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/d/default"}},
        "$defs": {"d": {"default": {"$ref": f"{url}/x.json"}}},
    },
}
INSTANCE = '{"a": 1, "default": 1, "examples": 1}'


@pytest.mark.parametrize("case", REMOTE, ids=list(REMOTE))
def test_remote_schemas_are_schema_invalid_without_a_request(schema_host: SchemaHost, case: str) -> None:
    text = json.dumps(REMOTE[case](_url(schema_host)))
    with pytest.raises(SchemaInvalid) as info:
        validate_reply(reply(INSTANCE), load_schema(text))
    assert info.value.code == "SCHEMA_INVALID"
    assert schema_host.hits == 0


@pytest.mark.parametrize("case", REMOTE, ids=list(REMOTE))
def test_a_validator_never_retrieves_even_without_the_checks(schema_host: SchemaHost, case: str) -> None:
    schema = REMOTE[case](_url(schema_host))
    bypassed = OutputSchema(schema, build_validator(schema), frozenset())
    with pytest.raises(SchemaInvalid, match="does not resolve"):
        parse_report(INSTANCE, bypassed)
    assert schema_host.hits == 0


def test_a_root_id_keeps_local_refs_local(schema_host: SchemaHost) -> None:
    schema = {"$id": f"{_url(schema_host)}/root.json", "$defs": {"n": {"type": "integer"}}, "$ref": "#/$defs/n"}
    output = load_schema(json.dumps(schema))
    assert parse_report("3", output) == 3
    with pytest.raises(OutputSchemaMismatch):
        parse_report('"x"', output)
    assert schema_host.hits == 0


def _object_nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"type": "object", "properties": {"x": node}}
    return node


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps(_object_nested(150)), f"deeper than {MAX_SCHEMA_DEPTH} levels"),
        ('{"not": ' * 10_000 + "{}" + "}" * 10_000, f"deeper than {MAX_SCHEMA_DEPTH} levels"),
        ("[" * 100_000, f"deeper than {MAX_SCHEMA_DEPTH} levels"),
        (json.dumps({"enum": ["x" * MAX_SCHEMA_CHARS]}), f"at most {MAX_SCHEMA_CHARS}"),
        (json.dumps({"$ref": "#"}), "cycle at \\$ that never descends"),
        (
            json.dumps({"$defs": {"a": {"allOf": [{"$ref": "#/$defs/b"}]}, "b": {"not": {"$ref": "#/$defs/a"}}}}),
            "cycle",
        ),
        (json.dumps({"type": "string", "pattern": "(a)\\1"}), "pattern at \\$ is not supported by RE2"),
        (json.dumps({"patternProperties": {"^(?!x)": {}}}), "patternProperties at \\$ is not supported by RE2"),
        (json.dumps({"properties": {"a": {"pattern": "(?<=a)b"}}}), "pattern at \\$.properties.a"),
        (json.dumps({"patternProperties": {"^x": {}}, "unevaluatedProperties": False}), "unevaluatedProperties"),
        (json.dumps({"properties": {"a": {"$schema": "https://example.com/s"}}}), "only the root may carry \\$schema"),
        (json.dumps({"title": "t", "$ref": "#/title"}), "does not point at a subschema"),
        (json.dumps({"anyOf": [{}], "$ref": "#/anyOf/x"}), "does not resolve"),
        ('{"description": "\\ud800"}', "lone UTF-16 surrogate"),
    ],
    ids=[
        "150-levels",
        "10000-levels",
        "unclosed-brackets",
        "too-large",
        "self-ref",
        "ref-cycle",
        "backreference",
        "lookahead",
        "lookbehind",
        "unevaluated-beside-pattern-properties",
        "nested-schema-keyword",
        "ref-into-data",
        "bad-pointer",
        "lone-surrogate",
    ],
)
def test_schemas_that_cannot_run_safely_are_schema_invalid(text: str, message: str) -> None:
    with pytest.raises(SchemaInvalid, match=message):
        load_schema(text)


@pytest.mark.parametrize(
    "schema",
    [
        _object_nested((MAX_SCHEMA_DEPTH - 1) // 2),
        {"type": "object", "properties": {"a": {"$ref": "#"}}},  # recursion that descends is fine
        {"$defs": {"a": {"$anchor": "x", "type": "string"}}, "$ref": "#x"},
        {"$dynamicAnchor": "n", "type": "array", "items": {"$dynamicRef": "#n"}},
        {"definitions": {"a": {"type": "string"}}, "$ref": "#/definitions/a"},
        {"type": "object", "properties": {"default": {"type": "string"}, "$id": {"type": "string"}}},
        {"type": "string", "default": {"$ref": "https://example.com/not-a-schema-here"}},
    ],
)
def test_ordinary_schemas_still_load(schema: dict[str, Any]) -> None:
    load_schema(json.dumps(schema))


@pytest.mark.parametrize(
    ("schema", "report"),
    [
        ({"patternProperties": {"^x": {"type": "integer"}}}, ["x", "y"]),
        ({"patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": False}, "x-text"),
        ({"properties": {"a": {"type": "integer"}}, "additionalProperties": False}, [{"a": "b"}]),
        ({"format": "regex"}, 42),
        ({"items": {"format": "regex"}}, [None, True, {"(a)\\1": 1}]),
    ],
)
def test_object_and_string_keywords_let_other_types_pass(schema: dict[str, Any], report: Any) -> None:
    """As in JSON Schema: patternProperties and additionalProperties apply to objects, the regex format to strings."""
    assert parse_report(json.dumps(report), load_schema(json.dumps(schema))) == report


def _pattern_schema() -> OutputSchema:
    return load_schema(
        json.dumps(
            {
                "type": "object",
                "properties": {"id": {"type": "string", "pattern": HOSTILE}},
                "patternProperties": {"^x-" + HOSTILE[1:]: {"type": "integer"}},
                "propertyNames": {"pattern": "^(id|x-([a-z0-9]+-?)+)$"},
                "additionalProperties": False,
            }
        )
    )


@pytest.mark.parametrize(
    ("report", "violations"),
    [
        ({"id": "a" * 64 + "!"}, ["$.id: pattern"]),
        ({"id": "ab-" * 21 + "c"}, []),
        ({"id": "a-b", "x-" + "a" * 64 + "!": 1}, ["$: additionalProperties false (1 unexpected", "$: pattern"]),
        ({"id": "a-b", "x-" + "a" * 63 + "-": "x"}, ["$.*: type integer"]),
    ],
)
def test_a_catastrophic_pattern_runs_in_linear_time(report: dict[str, Any], violations: list[str]) -> None:
    text = json.dumps(report)
    if not violations:
        assert parse_report(text, _pattern_schema()) == report
        return
    with pytest.raises(OutputSchemaMismatch) as info:
        parse_report(text, _pattern_schema())
    assert all(v in info.value.message for v in violations), info.value.message


@pytest.mark.parametrize(
    ("pattern", "good", "bad"),
    [
        ("^\\u0041+$", "AAA", "aaa"),  # ECMA-262 escapes, rewritten for RE2
        ("^\\u{1F600}$", "\U0001f600", "x"),
        ("^(?<year>\\d{4})-\\d{2}$", "2026-11", "26-11"),
        ("^\\p{Lu}\\w*$", "Ab_1", "ab"),
        ("^\\d+$", "123", "١٢٣"),  # ECMA's \d is ASCII, like RE2's (Python's re would match Arabic digits)
        ("^a$", "a", "a\n"),  # ECMA's $ ends the text (Python's re also matches before a final newline)
    ],
)
def test_patterns_keep_ecma_262_meaning(pattern: str, good: str, bad: str) -> None:
    output = load_schema(json.dumps({"type": "string", "pattern": pattern}))
    assert parse_report(json.dumps(good), output) == good
    with pytest.raises(OutputSchemaMismatch, match="pattern"):
        parse_report(json.dumps(bad), output)


def test_the_regex_format_uses_re2() -> None:
    output = load_schema(json.dumps({"type": "string", "format": "regex"}))
    assert parse_report(json.dumps(HOSTILE), output) == HOSTILE
    with pytest.raises(OutputSchemaMismatch, match="format"):
        parse_report(json.dumps("(a)\\1"), output)


@pytest.mark.parametrize(
    ("text", "limit", "where"),
    [
        ("[[]]", 2, None),
        ("[[[]]]", 2, 2),
        ('{"a": "[[[[", "b": [{}]}', 3, None),
        ('["\\"[[[[", [[]]]', 2, 12),
        ('"unterminated [[[[', 1, None),
        ("]]]][[", 1, 5),
    ],
)
def test_nesting_is_counted_outside_strings(text: str, limit: int, where: int | None) -> None:
    assert nesting_overflow(text, limit) == where
