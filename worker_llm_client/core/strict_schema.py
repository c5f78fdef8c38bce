"""The canonical schema compiled for OpenAI strict mode (dialect ``openai_strict``).

Sources: developers.openai.com, structured outputs, "Supported schemas"; the openai SDK's strict
transform (``openai/lib/_pydantic.py``), which leaves what this sends unchanged.

The root is ``type: object``; every object lists all its properties in ``required`` and has
``additionalProperties: false``; an optional property is sent required and nullable
(``nulls_added``: ``restore_report`` drops those nulls); a type list with object or array becomes
``anyOf``; ``oneOf`` is sent as ``anyOf``; minLength, maxLength, minProperties, maxProperties,
uniqueItems and formats outside ``OPENAI_FORMATS`` are left out (``_LOCAL``: checked locally only).

``Unfit`` (``schema_dialects`` then sends the schema as is with strict off) for ``_UNFIT``
keywords, a map (``additionalProperties`` a schema, or no properties), a subschema or items of any
type, ``anyOf`` beside other keywords or at the root, ``required`` naming an undeclared property,
and OpenAI's size limits (``_LIMITS``: 5000 properties, 10 levels of objects, 1000 enum values,
120,000 characters of names and enum/const strings, 15,000 for one enum of more than 250 strings).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker_llm_client.core.schema_compiler import (
    BY_TYPE,
    TYPED,
    Compiler,
    Unfit,
    check_limits,
    compiled_nodes,
    kept_notes,
    split_types,
)
from worker_llm_client.core.schema_walk import CONSTRAINT_KEYWORDS, DEFS, accepts_null
from worker_llm_client.execution_models import WireSchema

OPENAI_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"})
_UNFIT = frozenset(
    {
        "allOf", "not", "if", "then", "else", "dependentRequired", "dependentSchemas", "patternProperties",
        "propertyNames", "unevaluatedProperties", "unevaluatedItems", "contains", "minContains", "maxContains",
        "prefixItems", "$dynamicRef",
    }
)  # fmt: skip
_LOCAL = frozenset({"minLength", "maxLength", "minProperties", "maxProperties", "uniqueItems"})
_KEPT = frozenset(
    {"enum", "const", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
     "minItems", "maxItems"}
)  # fmt: skip
# properties, nesting, enum values, characters of names and enum/const strings, and characters of
# one enum of more than 250 strings
_LIMITS = {"properties": 5000, "depth": 10, "enum values": 1000, "characters": 120_000}
_BIG_ENUM = (250, 15_000)


def strict_schema(schema: Mapping[str, Any]) -> WireSchema:
    """``schema`` in OpenAI strict mode, or ``Unfit``."""
    if schema.get("type") != "object" or {"$ref", "anyOf", "oneOf"} & set(schema):
        raise Unfit("the root is not a plain 'type: object'")
    compiler = _Strict(schema)
    sent = compiler.node(schema, "$")
    _check_limits(sent)
    return WireSchema("openai_strict", sent, True, compiler.nulls_added, tuple(compiler.unenforced))


@dataclass
class _Strict(Compiler):
    nulls_added: bool = False
    unfit = _UNFIT
    alone = "beside $ref, which strict mode takes alone"

    def body(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = kept_notes(node) | self.defs(node, path)
        split = split_types(node, path, scalars_ok=True)
        if split is not None:
            return out | {"anyOf": [self.node(branch, where) for branch, where in split]}
        if "anyOf" in node or "oneOf" in node:
            beside = sorted(set(node) & CONSTRAINT_KEYWORDS - {"anyOf", "oneOf"})
            if beside:
                raise Unfit(f"'{beside[0]}' beside anyOf/oneOf at {path}")
            return out | {"anyOf": self.union(node, path)}
        if "type" not in node and "enum" not in node and "const" not in node:
            raise Unfit(f"the subschema at {path} has no type (it allows any value)")
        out.update({"type": node["type"]} if "type" in node else {})
        if node.get("type") == "object":
            out.update(self.object(node, path))
        if node.get("type") == "array":
            out["items"] = self.items(node, path)
        return out | self.assertions(node, path)

    def assertions(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        """The keywords strict mode takes as they are; those it does not are noted."""
        kinds = node.get("type", list(BY_TYPE))
        kinds = [kinds] if isinstance(kinds, str) else kinds
        kept: dict[str, Any] = {}
        for key, value in node.items():
            if key in TYPED and not any(key in BY_TYPE.get(kind, ()) for kind in kinds):
                continue  # applies to none of the node's types: changes nothing
            if key in _KEPT or (key == "format" and value in OPENAI_FORMATS):
                kept[key] = value
            elif key in _LOCAL or key == "format":
                self.note(key, path)
        return kept

    def object(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        props, required = self.properties(node, path)
        sent = {name: self.optional(sub, name in required, f"{path}.properties.{name}") for name, sub in props.items()}
        return {"properties": sent, "required": list(props), "additionalProperties": False}

    def optional(self, sub: Any, required: bool, path: str) -> dict[str, Any]:
        compiled = self.node(sub, path)
        if required or accepts_null(sub, self.root):
            return compiled
        self.nulls_added = True
        kind = compiled.get("type")
        if isinstance(kind, str) and kind not in ("object", "array") and not {"enum", "const"} & set(compiled):
            return {**compiled, "type": [kind, "null"]}
        return {"anyOf": [compiled, {"type": "null"}]}

    def items(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        items = node.get("items")
        if not isinstance(items, Mapping) or not items:
            raise Unfit(f"the array at {path} has no items schema (its items may be anything)")
        return self.node(items, f"{path}.items")


def _check_limits(sent: Mapping[str, Any]) -> None:
    size = dict.fromkeys(_LIMITS, 0)
    for node, depth in compiled_nodes(sent):
        size["depth"] = max(size["depth"], depth)
        props, enum = node.get("properties") or {}, node.get("enum") or []
        size["properties"] += len(props)
        size["enum values"] += len(enum)
        strings = [v for v in [*enum, node.get("const")] if isinstance(v, str)]
        size["characters"] += sum(map(len, [*props, *strings, *(n for k in DEFS for n in node.get(k) or {})]))
        if len(strings) > _BIG_ENUM[0] and sum(map(len, strings)) > _BIG_ENUM[1]:
            raise Unfit(f"an enum of more than {_BIG_ENUM[0]} strings exceeds {_BIG_ENUM[1]} characters")
    check_limits(size, _LIMITS, "OpenAI")
