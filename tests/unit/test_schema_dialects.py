"""One canonical schema compiled per provider: which dialect each provider is addressed in, the
memo, the roots each dialect takes, Gemini's and JSON mode's forms, and the shared schema walkers.
Each compiler has its own file: test_schema_dialects_{strict,claude,grammar,restore}.py."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.stacks import ROOT
from worker_llm_client.core import schema_dialects
from worker_llm_client.core.schema_dialects import accepts_null, dialect_for, pointer, wire_schema
from worker_llm_client.errors import SchemaInvalid
from worker_llm_client.execution_models import WireSchema

REPO_SCHEMAS = {path.name: json.loads(path.read_text()) for path in sorted((ROOT / "schemas").glob("*.json"))}


def obj(required: list[str] | None = None, /, **props: Any) -> dict[str, Any]:
    """An object schema with ``props``; all of them required unless ``required`` says otherwise."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props) if required is None else required,
        "additionalProperties": False,
    }


STR, NUM = {"type": "string"}, {"type": "number"}


@pytest.mark.parametrize(
    ("provider", "structured", "dialect"),
    [
        ("gemini", None, "gemini"),
        ("vertex", "json_object", "gemini"),
        ("openai", None, "openai_strict"),
        ("openai", "json_object", "openai_strict"),  # only openai_compatible endpoints have a structuredOutput
        ("anthropic", None, "anthropic"),
        ("anthropic_vertex", None, "anthropic"),
        ("openai_compatible", None, "openai_strict"),
        ("openai_compatible", "json_schema", "openai_strict"),
        ("openai_compatible", "json_object_schema", "json_object_schema"),
        ("openai_compatible", "json_object", "json_object"),
    ],
)
def test_the_dialect_a_provider_is_addressed_in_first(provider: Any, structured: Any, dialect: str) -> None:
    assert dialect_for(provider, structured) == dialect


def test_a_schema_is_compiled_once_per_object_and_provider() -> None:
    schema = obj(a=STR)
    first = wire_schema(schema, "openai")
    assert wire_schema(schema, "openai") is first
    assert wire_schema(schema, "anthropic") is not first
    twin = copy.deepcopy(schema)  # the same text parsed again: equal, compiled again
    assert wire_schema(twin, "openai") == first and wire_schema(twin, "openai") is not first


def test_the_cache_is_bounded_and_never_answers_for_another_object(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(schema_dialects, "_cache", {})
    monkeypatch.setattr(schema_dialects, "_CACHE_SIZE", 3)
    schemas = [obj(**{f"p{i}": STR}) for i in range(4)]
    first = wire_schema(schemas[0], "openai")
    for schema in schemas[1:]:
        wire_schema(schema, "openai")
    assert len(schema_dialects._cache) == 3
    assert wire_schema(schemas[0], "openai") is not first  # evicted, compiled again
    other = obj(x=NUM)
    schema_dialects._cache[(id(other), "openai", None)] = (obj(), first)  # a stale entry under a reused id
    assert wire_schema(other, "openai").schema["properties"] == {"x": NUM}  # type: ignore[index]


@pytest.mark.parametrize(
    "root",
    [
        {"type": "array", "items": STR},
        {"type": ["string", "null"]},
        {"const": 3},
        {"enum": ["a", "b"]},
    ],
)
@pytest.mark.parametrize(
    ("provider", "structured"),
    [("openai", None), ("openai_compatible", "json_schema"), ("anthropic", None), ("openai_compatible", "json_object")],
)
def test_a_root_that_admits_no_object_cannot_go_to_a_provider_that_returns_objects(
    root: dict[str, Any], provider: Any, structured: Any
) -> None:
    with pytest.raises(
        SchemaInvalid, match=rf"^outputSchema cannot be used with provider {provider}: its root"
    ) as info:
        wire_schema(root, provider, structured)
    assert info.value.code == "SCHEMA_INVALID" and '"a"' not in info.value.message


@pytest.mark.parametrize(
    ("provider", "structured", "dialect"),
    [("gemini", None, "gemini"), ("openai_compatible", "json_object_schema", "json_object_schema")],
)
def test_gemini_and_grammars_take_any_root(provider: Any, structured: Any, dialect: str) -> None:
    schema = {"type": "array", "items": STR}
    assert wire_schema(schema, provider, structured).dialect == dialect


@pytest.mark.parametrize(
    "root", [{"type": ["object", "null"], "properties": {}}, {"enum": [{"a": 1}, "b"]}, {"const": {}}, {}]
)
def test_a_root_that_admits_an_object_is_accepted(root: dict[str, Any]) -> None:
    assert wire_schema(root, "openai_compatible", "json_object").dialect == "json_object"


# ---------------------------------------------------------------- gemini
@pytest.mark.parametrize(
    ("schema", "gaps"),
    [
        (
            {"type": "object", "properties": {"a": {"type": "string", "minLength": 2}}},
            ["'minLength' at $.properties.a"],
        ),
        (
            {"type": "array", "items": {"type": "integer", "multipleOf": 2}, "uniqueItems": True},
            ["'uniqueItems' at $", "'multipleOf' at $.items"],
        ),
        (
            {"$defs": {"d": {"type": "number", "exclusiveMinimum": 0}}, "$ref": "#/$defs/d"},
            ["'exclusiveMinimum' at $.$defs.d"],
        ),
        ({"oneOf": [STR, {"type": "null"}]}, ["'oneOf' at $: Gemini treats it as anyOf"]),
        ({"anyOf": [{"type": "object", "patternProperties": {"^x": {}}}]}, ["'patternProperties' at $.anyOf[0]"]),
        (obj(pattern=STR), []),  # a property named like a keyword
        ({"type": "string", "examples": ["x"], "$comment": "c", "x-custom": 1}, []),  # annotations constrain nothing
        ({"anyOf": [True, STR], "properties": {"x": False}}, []),
    ],
)
def test_gemini_gets_the_schema_as_is_and_its_gaps_are_listed(schema: dict[str, Any], gaps: list[str]) -> None:
    wire = wire_schema(schema, "gemini")
    assert wire.schema is schema and wire.dialect == "gemini" and not wire.strict and not wire.nulls_added
    assert len(wire.unenforced) == len(gaps) and all(
        u.startswith(g) for u, g in zip(wire.unenforced, gaps, strict=True)
    )


def test_json_mode_sends_no_schema() -> None:
    wire = wire_schema(REPO_SCHEMAS["weekly_report.json"], "openai_compatible", "json_object")
    assert wire == WireSchema("json_object", None, unenforced=("the whole schema: the endpoint only guarantees JSON",))


# ---------------------------------------------------------------- helpers
@pytest.mark.parametrize(
    ("ref", "found"),
    [
        ("#", "root"),
        ("#/properties/a~1b", STR),
        ("#/properties/t~0/items/0", NUM),
        ("#/properties/t~0/items/7", None),
        ("#/properties/t~0/items/x", None),
        ("#/properties/nope", None),
        ("#/properties/a~1b/type/x", None),
        ("#anchor", None),
        ("other.json#/a", None),
    ],
)
def test_local_pointers(ref: str, found: Any) -> None:
    root = {"properties": {"a/b": STR, "t~": {"items": [NUM]}}}
    assert pointer(root, ref) == (root if found == "root" else found)


@pytest.mark.parametrize(
    ("node", "nullable"),
    [
        ({}, True),
        (True, True),
        (False, False),
        (STR, False),
        ({"type": ["string", "null"]}, True),
        ({"enum": ["a", None]}, True),
        ({"enum": ["a"]}, False),
        ({"const": None}, True),
        ({"const": 0}, False),
        ({"anyOf": [STR, {"type": "null"}]}, True),
        ({"oneOf": [STR, NUM]}, False),
        ({"allOf": [{}, {"type": "null"}]}, True),
        ({"allOf": [{}, STR]}, False),
        ({"$ref": "#/$defs/n"}, True),
        ({"$ref": "#/$defs/s"}, False),
        ({"$ref": "#/$defs/loop"}, False),  # a chain too long to follow: taken as not nullable
    ],
)
def test_which_subschemas_accept_null(node: Any, nullable: bool) -> None:
    root = {"$defs": {"n": {"type": "null"}, "s": STR, "loop": {"$ref": "#/$defs/loop"}}}
    assert accepts_null(node, root) is nullable
