"""The canonical schema compiled for Anthropic structured outputs (dialect ``anthropic``).

Sources: platform.claude.com, structured outputs, "JSON Schema limitations"; the anthropic SDK's
``transform_schema`` (``anthropic/lib/_parse/_transform.py``), whose rules these follow and which
leaves what this sends unchanged.

Every object gets ``additionalProperties: false``, ``required`` is kept (Claude allows optional
properties), type lists become ``anyOf``, ``oneOf`` is sent as ``anyOf``, ``enum``/``const`` of
scalars (the type they imply is dropped), string formats in ``ANTHROPIC_FORMATS``, ``minItems`` 0
or 1; every other constraint (minimum, maxLength, pattern...) moves into ``description`` as the SDK
does, and is listed as unenforced.

``Unfit`` (``schema_dialects`` then sends no schema on the wire: the adapter puts it in the
instructions) for recursion, ``_UNFIT`` keywords, a map, a subschema with no type, or more than 24
optional properties or 16 unions in the schema (``_LIMITS``, per request).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from worker_llm_client.core.schema_compiler import (
    Compiler,
    Unfit,
    check_limits,
    compiled_nodes,
    kept_notes,
    split_types,
)
from worker_llm_client.core.schema_guard import find_cycle
from worker_llm_client.core.schema_walk import CONSTRAINT_KEYWORDS, children, pointer
from worker_llm_client.core.strict_schema import OPENAI_FORMATS
from worker_llm_client.execution_models import WireSchema

ANTHROPIC_FORMATS = OPENAI_FORMATS | {"uri"}
_UNFIT = frozenset(
    {"allOf", "if", "then", "else", "dependentSchemas", "patternProperties", "prefixItems", "$dynamicRef"}
)
_LIMITS = {"optional properties": 24, "unions": 16}  # across the schema, per request


def claude_schema(schema: Mapping[str, Any]) -> WireSchema:
    """``schema`` as Claude's structured outputs take it, or ``Unfit``."""
    loop = _recursion(schema)
    if loop is not None:
        raise Unfit(f"the schema is recursive (at {loop})")
    compiler = _Claude(schema)
    sent = compiler.node(schema, "$")
    _check_limits(sent)
    return WireSchema("anthropic", sent, unenforced=tuple(compiler.unenforced))


@dataclass
class _Claude(Compiler):
    unfit = _UNFIT
    alone = "beside $ref, which is sent alone"

    def body(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = self.defs(node, path)
        split = split_types(node, path, scalars_ok=False)
        if split is not None:
            node = {**kept_notes(node), "anyOf": [b for b, _ in split]}
            out["anyOf"] = [self.node(branch, where) for branch, where in split]
        elif "anyOf" in node or "oneOf" in node:
            out["anyOf"] = self.union(node, path)
        enum, const = node.get("enum"), node.get("const")
        if isinstance(enum, list) and enum and all(map(_scalar, enum)):
            out["enum"] = enum
        if "const" in node and _scalar(const):
            out["const"] = const
        kind = node.get("type")
        if isinstance(kind, list):
            kind = kind[0]  # a list of one: split_types split the longer ones
        if not {"anyOf", "enum", "const"} & set(out):
            if kind is None:
                raise Unfit(f"the subschema at {path} has no type (it allows any value)")
            out["type"] = kind
        out.update(self.typed(node, out.get("type"), path))
        return self.describe(node, out, path)

    def typed(self, node: Mapping[str, Any], kind: Any, path: str) -> dict[str, Any]:
        if kind == "object":
            props, required = self.properties(node, path)
            sent = {name: self.node(sub, f"{path}.properties.{name}") for name, sub in props.items()}
            return {"properties": sent, "additionalProperties": False} | ({"required": required} if required else {})
        if kind == "string" and node.get("format") in ANTHROPIC_FORMATS:
            return {"format": node["format"]}
        if kind != "array":
            return {}
        sent = {"items": self.node(node["items"], f"{path}.items")} if "items" in node else {}
        return sent | ({"minItems": node["minItems"]} if node.get("minItems") in (0, 1) else {})

    def describe(self, node: Mapping[str, Any], out: dict[str, Any], path: str) -> dict[str, Any]:
        """The constraints not sent, written into ``description`` as the SDK does."""
        done = set(out) | ({"oneOf", "type"} if {"anyOf", "enum", "const"} & set(out) else set())
        done |= {"properties", "required", "additionalProperties"} if out.get("type") == "object" else set()
        left = {k: v for k, v in node.items() if k in CONSTRAINT_KEYWORDS and k not in done}
        for key in left:
            self.note(key, path)
        rules = ", ".join(f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in left.items())
        text = "\n\n".join(t for t in (node.get("description"), rules and "{" + rules + "}") if t)
        return out | ({"description": text} if text else {}) | ({"title": node["title"]} if "title" in node else {})


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _recursion(schema: Mapping[str, Any]) -> str | None:
    """The path of a subschema that a ``$ref`` leads back into, or None: a depth-first search over
    subschemas, whose edges are the keywords holding subschemas and each ``$ref``."""
    edges: dict[int, list[int]] = {}
    where: dict[int, str] = {}
    todo: list[tuple[Mapping[str, Any], str]] = [(schema, "$")]
    while todo:
        node, path = todo.pop()
        kids = list(children(node, path))
        target = pointer(schema, str(node["$ref"])) if "$ref" in node else None
        edges[id(node)] = [id(kid) for kid, _ in kids] + ([id(target)] if isinstance(target, Mapping) else [])
        where[id(node)] = path
        todo.extend(kids)
    cycle = find_cycle(edges)
    return None if cycle is None else where[cycle]


def _check_limits(sent: Mapping[str, Any]) -> None:
    size = dict.fromkeys(_LIMITS, 0)
    for node, _ in compiled_nodes(sent):
        size["optional properties"] += len(set(node.get("properties") or ()) - set(node.get("required") or ()))
        size["unions"] += "anyOf" in node
    check_limits(size, _LIMITS, "Anthropic")
