"""llama.cpp grammars (``core/grammar_schema.py``): what the converter reads of each subschema,
what is left out before it fails on it, and the schemas that go to JSON mode instead."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_schema_dialects import NUM, REPO_SCHEMAS, STR, obj
from worker_llm_client.core.schema_dialects import wire_schema
from worker_llm_client.errors import SchemaInvalid
from worker_llm_client.execution_models import WireSchema

GRAMMAR = ("openai_compatible", "json_object_schema")


def grammar(schema: dict[str, Any]) -> WireSchema:
    return wire_schema(schema, *GRAMMAR)  # type: ignore[arg-type]


def test_the_repository_schemas_go_to_a_grammar_and_numeric_bounds_are_not_enforced() -> None:
    report = grammar(REPO_SCHEMAS["weekly_report.json"])
    assert report.dialect == "json_object_schema" and report.schema == REPO_SCHEMAS["weekly_report.json"]
    assert report.unenforced == ("'minimum' at $.properties.confidence", "'maximum' at $.properties.confidence")
    digest = grammar(REPO_SCHEMAS["weekly_digest.json"])
    assert digest.schema == REPO_SCHEMAS["weekly_digest.json"] and digest.unenforced == ()


@pytest.mark.parametrize(
    ("sub", "sent", "gaps"),
    [
        ({"type": "string", "pattern": "^[a-z]+$", "minLength": 2}, None, ["'minLength' at $.properties.a"]),
        (
            {"type": "string", "pattern": "[a-z]", "minLength": 2},
            {"type": "string", "minLength": 2},
            ["'pattern' at $.properties.a: not anchored '^...$', which the grammar converter requires"],
        ),
        (
            {"type": "string", "pattern": "^(?:ab)+$"},
            {"type": "string"},
            ["'pattern' at $.properties.a: the grammar converter takes no '(?' groups or class escapes"],
        ),
        ({"type": "string", "pattern": "^\\d+$"}, {"type": "string"}, ["'pattern' at $.properties.a: the grammar"]),
        ({"type": "string", "pattern": "^"}, {"type": "string"}, ["'pattern' at $.properties.a: not anchored"]),
        ({"type": "string", "format": "date-time", "maxLength": 30}, None, ["'maxLength' at $.properties.a"]),
        ({"type": "string", "format": "email", "maxLength": 30}, None, ["'format' at $.properties.a"]),
        ({"type": "integer", "minimum": 1, "multipleOf": 2}, None, ["'minimum' at", "'multipleOf' at"]),
        ({"type": "array", "items": STR, "uniqueItems": True, "contains": STR}, None, ["'uniqueItems'", "'contains'"]),
        ({"type": "array", "items": {}}, {"type": "array"}, []),
        (
            {"type": "array", "prefixItems": [STR], "items": NUM, "minItems": 1},
            {"type": "array", "prefixItems": [STR], "minItems": 1},
            ["'items' at $.properties.a: beside prefixItems", "'minItems' at $.properties.a"],
        ),
        (
            {"oneOf": [STR, NUM], "type": "string"},
            None,
            ["'oneOf' at $.properties.a: the grammar takes it as anyOf", "'type'"],
        ),
        ({"anyOf": [{"type": "number", "maximum": 2}]}, None, ["'maximum' at $.properties.a.anyOf[0]"]),
        ({"type": ["object", "null"], "properties": {"x": STR}}, None, ["'properties' at $.properties.a"]),
        ({"const": "x", "type": "string", "minLength": 1}, None, ["'minLength' at $.properties.a"]),
        ({"enum": ["x"], "not": {"const": "y"}}, None, ["'not' at $.properties.a"]),
        ({"type": "object", "properties": {"x": STR}, "maxProperties": 1}, None, ["'maxProperties' at $.properties.a"]),
        (
            {"additionalProperties": {"type": "integer", "minimum": 0}},
            None,
            ["'minimum' at $.properties.a.additionalProperties"],
        ),
        (
            {"type": "object", "if": {}, "then": {}, "dependentRequired": {}},
            None,
            ["'if'", "'then'", "'dependentRequired'"],
        ),
        ({}, None, []),
        ({"type": "boolean"}, None, []),
        ({"$ref": "#/$defs/d", "minLength": 1}, None, ["'minLength' at $.properties.a", "'maximum' at $.$defs.d"]),
    ],
)
def test_what_the_grammar_converter_reads_of_each_subschema(
    sub: dict[str, Any], sent: dict[str, Any] | None, gaps: list[str]
) -> None:
    schema = obj(a=sub)
    schema["$defs"] = {"d": {"type": "number", "maximum": 3}}
    wire = grammar(schema)
    assert wire.dialect == "json_object_schema" and wire.schema is not None
    assert wire.schema["properties"]["a"] == (sub if sent is None else sent)
    assert len(wire.unenforced) == len(gaps) and all(
        u.startswith(g) for u, g in zip(wire.unenforced, gaps, strict=True)
    )


def test_the_grammar_merges_only_the_properties_of_an_all_of() -> None:
    sub = {
        "allOf": [{"$ref": "#/$defs/base"}, {"anyOf": [obj(b={"type": "number", "maximum": 3})]}, {"minProperties": 1}]
    }
    schema = {"type": "object", "properties": {"a": sub}, "$defs": {"base": obj(c={"type": "number", "minimum": 1})}}
    wire = grammar(schema)
    assert wire.dialect == "json_object_schema"
    assert wire.unenforced == (
        "'allOf' at $.properties.a: the grammar merges only its branches' properties",
        "'minimum' at $.properties.a.allOf.properties.c",
        "'maximum' at $.properties.a.allOf.properties.b",
    )


@pytest.mark.parametrize(
    ("sub", "reason"),
    [
        ({"type": "array", "items": {"$ref": "#"}}, "'$ref' at $.properties.a.items is not a JSON pointer ('#/...')"),
        ({"$ref": "#/$defs/nope"}, "'$ref' at $.properties.a does not resolve"),
        ({"description": "anything"}, "the subschema at $.properties.a has no form the grammar converter reads"),
        ({"minimum": 3}, "the subschema at $.properties.a has no form the grammar converter reads"),
        ({"type": "array", "items": True}, "the boolean subschema at $.properties.a.items cannot be converted"),
    ],
)
def test_schemas_the_grammar_converter_cannot_read_go_in_json_mode(sub: dict[str, Any], reason: str) -> None:
    wire = grammar(obj(a=sub))
    assert wire == WireSchema(
        "json_object", None, unenforced=(f"grammar: {reason}", "the whole schema: the endpoint only guarantees JSON")
    )


def test_a_recursive_definition_is_read_once() -> None:
    schema = obj(tree={"$ref": "#/$defs/node"})
    schema["$defs"] = {"node": obj(kids={"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2})}
    assert grammar(schema).unenforced == ()


def test_a_root_that_is_no_object_has_nowhere_to_fall_back_from_a_grammar() -> None:
    with pytest.raises(SchemaInvalid, match="its grammar converter cannot read it"):
        grammar({"type": "array", "items": {"description": "x"}})
