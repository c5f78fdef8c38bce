"""OpenAI strict mode (``core/strict_schema.py``): the forms it sends, what it leaves to the local
check, and the schemas that go with strict off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from tests.unit.test_schema_dialects import NUM, REPO_SCHEMAS, STR, obj
from worker_llm_client.core import strict_schema
from worker_llm_client.core.schema_dialects import subschemas, wire_schema
from worker_llm_client.execution_models import WireSchema

STRICT_FORBIDDEN = strict_schema._UNFIT | strict_schema._LOCAL | {"oneOf"}


def assert_strict_rules(schema: Mapping[str, Any]) -> None:
    """OpenAI's documented rules for strict mode, on every subschema."""
    assert schema["type"] == "object" and not {"anyOf", "$ref"} & set(schema)
    for node, path in subschemas(schema):
        assert not STRICT_FORBIDDEN & set(node), path
        assert node.get("format", "date") in strict_schema.OPENAI_FORMATS, path
        if "$ref" in node:
            assert set(node) <= {"$ref", "$defs"}, path
        if node.get("type") == "object":
            assert node["additionalProperties"] is False, path
            assert node["required"] == list(node["properties"]), path
        if node.get("type") == "array":
            assert isinstance(node["items"], dict), path


@pytest.mark.parametrize("name", sorted(REPO_SCHEMAS))
def test_the_repository_schemas_go_to_openai_in_strict_mode(name: str) -> None:
    wire = wire_schema(REPO_SCHEMAS[name], "openai")
    assert wire.dialect == "openai_strict" and wire.strict and not wire.nulls_added
    assert wire.schema is not None
    assert_strict_rules(wire.schema)


def test_optional_properties_become_required_and_nullable() -> None:
    schema = obj(
        ["a"],
        a=STR,
        b=NUM,
        c={"type": "string", "enum": ["x", "y"]},
        d=obj(e=STR),
        f={"$ref": "#/$defs/item"},
        g={"type": ["string", "null"]},
        h={"type": "array", "items": STR},
        i={"anyOf": [STR, NUM], "description": "either"},
    )
    schema["$defs"] = {"item": obj(n=NUM)}
    wire = wire_schema(schema, "openai")
    assert wire.dialect == "openai_strict" and wire.nulls_added and wire.unenforced == ()
    sent = wire.schema
    assert sent is not None
    assert_strict_rules(sent)
    props = sent["properties"]
    assert props["a"] == STR  # required: as it was
    assert props["b"] == {"type": ["number", "null"]}
    assert props["c"] == {"anyOf": [{"type": "string", "enum": ["x", "y"]}, {"type": "null"}]}
    assert props["d"] == {"anyOf": [obj(e=STR), {"type": "null"}]}
    assert props["f"] == {"anyOf": [{"$ref": "#/$defs/item"}, {"type": "null"}]}
    assert props["g"] == {"type": ["string", "null"]}  # accepts null already
    assert props["h"] == {"anyOf": [{"type": "array", "items": STR}, {"type": "null"}]}
    assert props["i"] == {"anyOf": [{"description": "either", "anyOf": [STR, NUM]}, {"type": "null"}]}
    assert sent["$defs"] == {"item": obj(n=NUM)}


def test_what_strict_mode_leaves_out_is_listed_and_checked_locally() -> None:
    schema = obj(
        s={"type": "string", "minLength": 2, "maxLength": 9, "pattern": "^a", "format": "email"},
        u={"type": "string", "format": "uri"},
        n={"type": "integer", "minimum": 0, "maximum": 9, "multipleOf": 3, "minLength": 4},
        a={"type": "array", "items": STR, "minItems": 1, "maxItems": 3, "uniqueItems": True},
        o={**obj(x=STR), "minProperties": 1},
        one={"oneOf": [STR, NUM]},
        r={"$ref": "#/$defs/d", "description": "beside", "minLength": 1},
        e={"enum": [1, "a"], "maxLength": 3},
        t={"type": ["string", "null"], "minimum": 1, "maxLength": 4, "title": "T"},
    )
    schema["$defs"] = {"d": STR}
    wire = wire_schema(schema, "openai")
    assert wire.dialect == "openai_strict" and wire.schema is not None
    assert_strict_rules(wire.schema)
    props = wire.schema["properties"]
    assert props["s"] == {"type": "string", "pattern": "^a", "format": "email"}
    assert props["n"] == {"type": "integer", "minimum": 0, "maximum": 9, "multipleOf": 3}
    assert props["a"] == {"type": "array", "items": STR, "minItems": 1, "maxItems": 3}
    assert props["one"] == {"anyOf": [STR, NUM]}
    assert props["r"] == {"$ref": "#/$defs/d"}
    assert props["e"] == {"enum": [1, "a"]}
    assert props["t"] == {"title": "T", "type": ["string", "null"]}
    assert wire.unenforced == (
        "'minLength' at $.properties.s",
        "'maxLength' at $.properties.s",
        "'format' at $.properties.u",
        "'uniqueItems' at $.properties.a",
        "'minProperties' at $.properties.o",
        "'oneOf' at $.properties.one: sent as anyOf (exactly one is checked locally)",
        "'minLength' at $.properties.r: beside $ref, which strict mode takes alone",
        "'maxLength' at $.properties.e",
        "'maxLength' at $.properties.t",
    )


def test_a_type_list_with_an_object_is_split_into_a_union() -> None:
    schema = obj(
        v={
            "type": ["object", "array", "null"],
            "properties": {"k": STR},
            "required": ["k"],
            "items": NUM,
            "enum": [None, [1]],
        }
    )
    wire = wire_schema(schema, "openai")
    assert wire.schema is not None and wire.dialect == "openai_strict"
    assert wire.schema["properties"]["v"] == {
        "anyOf": [
            {
                "enum": [None, [1]],
                "type": "object",
                "properties": {"k": STR},
                "required": ["k"],
                "additionalProperties": False,
            },
            {"enum": [None, [1]], "type": "array", "items": NUM},
            {"enum": [None, [1]], "type": "null"},
        ]
    }


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"anyOf": [obj(a=STR), {"type": "array"}]}, "the root is not a plain 'type: object'"),
        ({"anyOf": [obj(a=STR)]}, "the root is not a plain 'type: object'"),
        ({"type": ["object"], "properties": {}}, "the root is not a plain 'type: object'"),
        ({**obj(a=STR), "$ref": "#/properties/a"}, "the root is not a plain 'type: object'"),
        (obj(a={"allOf": [STR]}), "'allOf' at $.properties.a is not supported"),
        (obj(a={"type": "array", "items": STR, "contains": STR}), "'contains' at $.properties.a is not supported"),
        (obj(a={"not": STR}), "'not' at $.properties.a is not supported"),
        (obj(a={"type": "array", "prefixItems": [STR], "items": STR}), "'prefixItems' at $.properties.a"),
        (obj(a={"type": "object"}), "the object at $.properties.a allows any property name (a map)"),
        (
            obj(a={"type": "object", "additionalProperties": STR}),
            "the object at $.properties.a allows any property name (a map)",
        ),
        (
            obj(a={**obj(b=STR), "additionalProperties": STR}),
            "the object at $.properties.a allows any property name (a map)",
        ),
        (obj(a={**obj(b=STR), "required": ["b", "c"]}), "'required' at $.properties.a names a property"),
        (obj(a={"description": "anything"}), "the subschema at $.properties.a has no type"),
        (obj(a={"type": "string", "anyOf": [STR]}), "'type' beside anyOf/oneOf at $.properties.a"),
        (obj(a={"anyOf": [STR], "oneOf": [STR]}), "'anyOf' and 'oneOf' at $.properties.a in one subschema"),
        (obj(a={"type": ["object", "null"], "anyOf": [obj()]}), "'type' at $.properties.a lists several types beside"),
        (obj(a={"type": "array"}), "the array at $.properties.a has no items schema"),
        (obj(a={"type": "array", "items": {}}), "the array at $.properties.a has no items schema"),
        (obj(a={"type": "array", "items": True}), "the array at $.properties.a has no items schema"),
        (obj(a={"anyOf": [True]}), "the boolean subschema at $.properties.a.anyOf[0] cannot be expressed"),
        (obj(a={"$ref": "#item"}), "'$ref' at $.properties.a points elsewhere than '#' or '#/$defs/<name>'"),
        (obj(a=obj([], b=STR), c={"$ref": "#/properties/a/properties/b"}), "'$ref' at $.properties.c points elsewhere"),
        (obj(c={"$ref": "#/$defs/a/properties/b"}), "'$ref' at $.properties.c points elsewhere"),
        (obj(**{f"p{i}": STR for i in range(5001)}), "5001 properties exceed OpenAI's limit of 5000"),
        (obj(a={"type": "string", "enum": [f"v{i}" for i in range(1001)]}), "1001 enum values exceed"),
        (obj(a={"type": "string", "enum": ["x" * 60 for _ in range(251)]}), "an enum of more than 250 strings"),
        (obj(a={"type": "string", "enum": ["x" * 20_000 for _ in range(7)]}), "140001 characters exceed"),
        (obj(**{"x" * 60_001: {"const": "y" * 60_000}}), "120001 characters exceed"),
    ],
)
def test_schemas_strict_mode_cannot_take_go_with_strict_off(schema: dict[str, Any], reason: str) -> None:
    wire = wire_schema(schema, "openai")
    assert wire == WireSchema("openai", schema, False, False, wire.unenforced)
    assert wire.unenforced[0].startswith(f"strict mode: {reason}"), wire.unenforced
    assert wire.unenforced[1] == "the whole schema: sent with strict off, so the provider does not guarantee it"


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = obj(leaf=STR)
    for _ in range(levels - 1):
        schema = obj(inner=schema)
    return schema


def test_openai_takes_ten_levels_of_nested_objects_in_strict_mode_and_no_more() -> None:
    assert wire_schema(_nested(10), "openai").dialect == "openai_strict"
    wire = wire_schema(_nested(11), "openai")
    assert wire.dialect == "openai" and wire.unenforced[0] == "strict mode: 11 depth exceed OpenAI's limit of 10"


def test_definitions_count_towards_the_limits() -> None:
    schema = obj(a={"$ref": "#/$defs/big"})
    schema["$defs"] = {"big": obj(**{f"p{i}": STR for i in range(5000)})}
    assert "5001 properties" in wire_schema(schema, "openai").unenforced[0]


def test_recursion_is_allowed_in_strict_mode() -> None:
    schema = {**obj(["name"], name=STR, children={"type": "array", "items": {"$ref": "#"}})}
    wire = wire_schema(schema, "openai")
    assert wire.dialect == "openai_strict" and wire.nulls_added and wire.schema is not None
    assert wire.schema["properties"]["children"]["anyOf"][0]["items"] == {"$ref": "#"}
