"""Anthropic structured outputs (``core/claude_schema.py``): the forms Claude gets, the constraints
moved into descriptions, and the schemas that go in the instructions only."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_schema_dialects import NUM, REPO_SCHEMAS, STR, obj
from worker_llm_client.core.schema_dialects import wire_schema
from worker_llm_client.execution_models import WireSchema


def test_the_repository_report_goes_to_claude_with_its_bounds_in_descriptions() -> None:
    wire = wire_schema(REPO_SCHEMAS["weekly_report.json"], "anthropic")
    assert wire.dialect == "anthropic" and not wire.strict and not wire.nulls_added
    assert wire.schema == {
        "type": "object",
        "title": "WeeklyReport",
        "properties": {
            "title": {"type": "string", "description": "One-line headline for the week"},
            "summary": {"type": "string", "description": "Two or three sentences"},
            "status": {"enum": ["on_track", "at_risk", "off_track"]},
            "highlights": {"type": "array", "items": STR, "minItems": 1, "description": "{maxItems: 5}"},
            "risks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"risk": STR, "severity": {"enum": ["low", "medium", "high"]}},
                    "additionalProperties": False,
                    "required": ["risk", "severity"],
                },
            },
            "confidence": {"type": "number", "description": "{minimum: 0, maximum: 1}"},
        },
        "additionalProperties": False,
        "required": ["title", "summary", "status", "highlights", "risks", "confidence"],
    }
    assert wire.unenforced == (
        "'maxItems' at $.properties.highlights",
        "'minimum' at $.properties.confidence",
        "'maximum' at $.properties.confidence",
    )


def test_claude_keeps_optional_properties_and_gets_the_rest_as_anthropic_does() -> None:
    schema = obj(
        ["s"],
        s={"type": "string", "format": "uuid", "pattern": "^a", "description": "id"},
        f={"type": "string", "format": "regex"},
        e={"enum": [[1]], "type": "array", "items": NUM},
        c={"const": "x", "type": "string"},
        cx={"const": [1], "type": "array", "items": NUM},
        t={"type": ["integer", "null"], "maximum": 3},
        one={"oneOf": [STR, NUM], "title": "One"},
        arr={"type": "array", "items": STR, "minItems": 0, "uniqueItems": True},
        free={"type": "object", "properties": {"k": STR}},
        r={"$ref": "#/$defs/d", "minLength": 2},
        single={"type": ["string"]},
        nothing={"type": "null"},
        bare={"type": "array"},
    )
    schema["$defs"] = {"d": STR}
    wire = wire_schema(schema, "anthropic")
    assert wire.schema is not None
    props = wire.schema["properties"]
    assert wire.schema["required"] == ["s"] and wire.schema["$defs"] == {"d": STR}
    assert props["s"] == {"type": "string", "format": "uuid", "description": 'id\n\n{pattern: "^a"}'}
    assert props["f"] == {"type": "string", "description": '{format: "regex"}'}
    assert props["e"] == {"type": "array", "items": NUM, "description": "{enum: [[1]]}"}
    assert props["c"] == {"const": "x"}
    assert props["cx"] == {"type": "array", "items": NUM, "description": "{const: [1]}"}
    assert props["t"] == {"anyOf": [{"type": "integer", "description": "{maximum: 3}"}, {"type": "null"}]}
    assert props["one"] == {"anyOf": [STR, NUM], "title": "One"}
    assert props["arr"] == {"type": "array", "items": STR, "minItems": 0, "description": "{uniqueItems: true}"}
    assert props["free"] == {"type": "object", "properties": {"k": STR}, "additionalProperties": False}
    assert props["r"] == {"$ref": "#/$defs/d"}
    assert props["single"] == STR and props["nothing"] == {"type": "null"} and props["bare"] == {"type": "array"}
    assert set(wire.unenforced) == {
        "'pattern' at $.properties.s",
        "'format' at $.properties.f",
        "'enum' at $.properties.e",
        "'const' at $.properties.cx",
        "'maximum' at $.properties.t<integer>",
        "'oneOf' at $.properties.one: sent as anyOf (exactly one is checked locally)",
        "'uniqueItems' at $.properties.arr",
        "'minLength' at $.properties.r: beside $ref, which is sent alone",
    }


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (obj(a={"type": "array", "items": {"$ref": "#/properties/a"}}), "the schema is recursive (at $.properties.a)"),
        ({**obj(kids={"type": "array", "items": {"$ref": "#"}})}, "the schema is recursive (at $)"),
        (obj(a={"allOf": [STR]}), "'allOf' at $.properties.a is not supported"),
        (obj(a={"if": STR, "then": STR}), "'if' at $.properties.a is not supported"),
        (obj(a={"type": "array", "prefixItems": [STR]}), "'prefixItems' at $.properties.a is not supported"),
        (
            obj(a={"type": "object", "additionalProperties": NUM}),
            "the object at $.properties.a allows any property name",
        ),
        (obj(a={"minimum": 1}), "the subschema at $.properties.a has no type"),
        (
            {
                **obj(a={"type": "array", "items": {"$ref": "#/$defs/n"}}),
                "$defs": {"n": obj(next={"$ref": "#/$defs/n"})},
            },
            "the schema is recursive (at $.$defs.n)",
        ),
        (obj(a={"$ref": "https://example.com/s.json"}), "'$ref' at $.properties.a points elsewhere than '#'"),
        (obj(a={"type": "array", "items": False}), "the boolean subschema at $.properties.a.items"),
        (
            obj(**{f"p{i}": STR for i in range(25)}) | {"required": []},
            "25 optional properties exceed Anthropic's limit of 24",
        ),
        (obj(**{f"p{i}": {"anyOf": [STR, NUM]} for i in range(17)}), "17 unions exceed Anthropic's limit of 16"),
    ],
)
def test_schemas_claude_cannot_take_go_in_the_instructions_only(schema: dict[str, Any], reason: str) -> None:
    wire = wire_schema(schema, "anthropic_vertex")
    assert wire == WireSchema("anthropic", None, unenforced=wire.unenforced)
    assert wire.unenforced[0].startswith(f"structured outputs: {reason}"), wire.unenforced
    assert wire.unenforced[1] == "the whole schema: sent in the instructions only"


def test_a_shared_definition_is_not_recursion() -> None:
    schema = obj(a={"$ref": "#/$defs/d"}, b={"$ref": "#/$defs/d"}, c={"$ref": "#/$defs/missing"})
    schema["$defs"] = {"d": obj(x={"$ref": "#/$defs/leaf"}), "leaf": STR}
    assert wire_schema(schema, "anthropic").schema is not None
