"""Restoring a strict-mode reply (``core/schema_restore.py``): the nulls strict mode added are
dropped, and a restored reply is valid exactly when the canonical one is; each SDK leaves the
compiled forms as they are."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.gemini_stub import example_for_schema
from tests.unit.test_schema_dialects import NUM, REPO_SCHEMAS, STR, obj
from tests.unit.test_schema_dialects_strict import assert_strict_rules
from worker_llm_client.core.output_validation import load_schema
from worker_llm_client.core.schema_dialects import pointer, restore_report, wire_schema


@pytest.mark.parametrize(
    ("schema", "reply", "restored"),
    [
        (obj(["a"], a=STR, b=NUM), {"a": "x", "b": None}, {"a": "x"}),
        (obj(["a"], a=STR, b=NUM), {"a": None, "b": 1}, {"a": None, "b": 1}),  # required: left for the validator
        (obj([], a={"type": ["string", "null"]}), {"a": None}, {"a": None}),  # null is a value here
        (obj([], a=STR), {"z": None, "a": None}, {"z": None}),  # undeclared: left for the validator
        (
            {"type": "array", "prefixItems": [obj([], a=STR)], "items": obj([], b=STR)},
            [{"a": None}, {"b": None}, {"b": "x"}],
            [{}, {}, {"b": "x"}],
        ),
        ({"type": "array", "items": False}, [{"a": None}], [{"a": None}]),
        (
            {"$defs": {"d": obj([], a=STR)}, "type": "object", "properties": {"x": {"$ref": "#/$defs/d"}}},
            {"x": {"a": None}},
            {"x": {}},
        ),
        (obj([], a={"anyOf": [obj([], b=STR), STR]}), {"a": {"b": None}}, {"a": {}}),
        (
            obj([], a={"oneOf": [{"$ref": "#/properties/c"}, {"type": "array"}]}, c=obj([], b=STR)),
            {"a": {"b": None}},
            {"a": {}},
        ),
        (obj([], a={"anyOf": [obj([], b=STR), obj([], b=NUM)]}), {"a": {"b": None}}, {"a": {"b": None}}),  # ambiguous
        (obj([], a={"anyOf": [obj([], b=STR), {"properties": {}}]}), {"a": {"b": None}}, {"a": {"b": None}}),  # untyped
        (obj([], a={"anyOf": [{"$ref": "#/properties/s"}, obj([], b=STR)]}, s=STR), {"a": {"b": None}}, {"a": {}}),
        (obj([], a={"anyOf": [True, False, obj([], b=STR)]}), {"a": {"b": None}}, {"a": {"b": None}}),
        ({"allOf": [obj([], a=STR), {"required": ["a"]}]}, {"a": None}, {"a": None}),
        ({"allOf": [obj([], a=STR), obj([], a={})]}, {"a": None}, {}),  # null must pass every declaration
        ({"allOf": [obj([], a={"type": "null"}), obj([], a={})]}, {"a": None}, {"a": None}),
        ("not a schema", {"a": None}, {"a": None}),
        (obj([], a=STR), "text", "text"),
    ],
)
def test_restoring_drops_only_the_nulls_strict_mode_added(schema: Any, reply: Any, restored: Any) -> None:
    assert restore_report(reply, schema) == restored


def test_restoring_is_bounded_by_depth() -> None:
    tree = {"type": "array", "items": {"$ref": "#"}}
    deep: Any = [{"x": None}]
    for _ in range(150):
        deep = [deep]
    assert restore_report(deep, {**tree, "items": {"anyOf": [{"$ref": "#"}, obj([], x=STR)]}}) == deep


# ------------------------------------------- property-style: strict form vs canonical schema
def _instances(schema: Mapping[str, Any], root: Mapping[str, Any], depth: int = 0) -> Iterator[Any]:
    """A few values valid against ``schema`` (our examples' subset): all properties, or only the required."""
    node = pointer(root, schema["$ref"]) if "$ref" in schema else schema
    if "anyOf" in node or "oneOf" in node:
        for branch in node.get("anyOf") or node["oneOf"]:
            yield from _instances(branch, root, depth)
        return
    kind = node.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if "enum" in node:
        yield node["enum"][0]
    elif kind == "object":
        props, required = node.get("properties", {}), node.get("required", [])
        full = {
            name: next(_instances(sub, root, depth + 1)) for name, sub in props.items() if depth < 4 or name in required
        }
        yield full
        yield {name: value for name, value in full.items() if name in required}
    elif kind == "array":
        yield [next(_instances(node["items"], root, depth + 1))] * max(node.get("minItems", 1), 1) if depth < 4 else []
    else:
        yield {"string": "s" * node.get("minLength", 1), "number": 0.5, "integer": 1, "boolean": True, "null": None}[
            str(kind)
        ]


def _strictify(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """What a model in strict mode writes for ``value``: every declared property, null when absent."""
    node = pointer(root, schema["$ref"]) if "$ref" in schema else schema
    validator = Draft202012Validator(root)
    for branch in node.get("anyOf") or node.get("oneOf") or ():
        if validator.evolve(schema=branch).is_valid(value):
            return _strictify(value, branch, root)
    if isinstance(value, dict):
        props = node.get("properties", {})
        declared = {name: _strictify(value[name], sub, root) if name in value else None for name, sub in props.items()}
        return {**{k: v for k, v in value.items() if k not in props}, **declared}
    if isinstance(value, list):
        return [_strictify(item, node["items"], root) for item in value]
    return value


def _with_added_nulls(restored: Any, value: Any) -> bool:
    """``restored`` is ``value`` but for properties it adds as null (their schema accepts null)."""
    if isinstance(value, dict):
        return (
            isinstance(restored, dict)
            and set(value) <= set(restored)
            and all(restored[k] is None for k in set(restored) - set(value))
            and all(_with_added_nulls(restored[k], v) for k, v in value.items())
        )
    if isinstance(value, list):
        return (
            isinstance(restored, list) and len(restored) == len(value) and all(map(_with_added_nulls, restored, value))
        )
    return bool(restored == value)


def _broken(value: Any) -> Iterator[Any]:
    """``value`` with one leaf replaced by a value of the wrong type, at each place in turn."""
    if isinstance(value, dict):
        for key in value:
            for bad in _broken(value[key]):
                yield {**value, key: bad}
    elif isinstance(value, list) and value:
        for bad in _broken(value[0]):
            yield [bad, *value[1:]]
    else:
        yield {"wrong": [value]}


EXAMPLES = {
    **REPO_SCHEMAS,
    "optional": obj(["id"], id={"type": "integer"}, note=STR, tags={"type": "array", "items": STR}),
    "nested-optional": obj(["a"], a=obj(["b"], b=NUM, c={"type": "string", "enum": ["x", "y"]}), d=obj([], e=STR)),
    "nullable": obj([], a={"type": ["string", "null"]}, b={"anyOf": [NUM, {"type": "null"}]}),
    "refs": {**obj(["items"], items={"type": "array", "items": {"$ref": "#/$defs/i"}}, extra={"$ref": "#/$defs/i"}),
             "$defs": {"i": obj(["k"], k=STR, v=NUM)}},
    "union": obj([], u={"anyOf": [obj(["k"], k=STR, w=NUM), {"type": "array", "items": NUM}]}),
    "recursive": obj(["name"], name=STR, kids={"type": "array", "items": {"$ref": "#"}}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_strict_reply_restored_is_valid_exactly_when_the_canonical_reply_is(name: str) -> None:
    schema = load_schema(json.dumps(EXAMPLES[name])).schema
    wire = wire_schema(schema, "openai")
    assert wire.dialect == "openai_strict" and wire.schema is not None
    assert_strict_rules(wire.schema)
    strict, canonical = Draft202012Validator(wire.schema), Draft202012Validator(schema)
    good = list(_instances(schema, schema))
    assert good and all(canonical.is_valid(value) for value in good)
    for value in good:
        sent = _strictify(value, schema, schema)
        assert strict.is_valid(sent), (value, sent)
        assert _with_added_nulls(restore_report(sent, schema), value) and canonical.is_valid(
            restore_report(sent, schema)
        )
    for bad in [bad for value in good for bad in _broken(value)]:
        sent = _strictify(bad, schema, schema)
        assert not canonical.is_valid(bad) and not strict.is_valid(sent), (bad, sent)
        assert not canonical.is_valid(restore_report(sent, schema))
    model = example_for_schema(dict(wire.schema), name)  # whatever the model writes in strict mode
    assert strict.is_valid(model)
    assert canonical.is_valid(restore_report(model, schema)) or wire.unenforced  # minLength: not sent


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_the_compiled_forms_are_what_each_sdk_would_send_them_as(name: str) -> None:
    """Each SDK's own transform (private helpers, pinned versions) leaves our forms unchanged."""
    from anthropic.lib._parse._transform import transform_schema
    from openai.lib._pydantic import _ensure_strict_json_schema

    sent = wire_schema(EXAMPLES[name], "openai").schema
    assert sent is not None
    strict = dict(sent)
    assert _ensure_strict_json_schema(copy.deepcopy(strict), path=(), root=copy.deepcopy(strict)) == strict
    claude = wire_schema(EXAMPLES[name], "anthropic").schema
    if claude is not None:  # recursion: no schema sent
        assert transform_schema(copy.deepcopy(dict(claude))) == claude
