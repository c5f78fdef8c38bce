"""What the OpenAI strict and Anthropic compilers share (``strict_schema``, ``claude_schema``).

Both walk the canonical schema and build a new one; a schema either compiles whole or is ``Unfit``
(the reason names a keyword and a path, never a value) and ``schema_dialects`` falls back. The
rules they share, from each provider's structured-output documentation and its SDK's transform:

- a boolean subschema cannot be expressed, nor a keyword in the dialect's ``unfit`` list;
- ``$ref`` is kept alone (what is beside it is listed) and only to ``#`` or ``#/$defs/<name>``: a
  reference into properties could point at a place the compiling moved;
- a ``type`` list becomes ``anyOf``, one branch per type with only the keywords of that type;
- ``oneOf`` is sent as ``anyOf``, and ``anyOf`` beside ``oneOf`` is unfit;
- every object is sent with ``additionalProperties: false``, so a map (``additionalProperties`` a
  schema, or no properties) and ``required`` naming an undeclared property are unfit;
- the size limits are counted on the compiled form, definitions included (``compiled_nodes``).

``Notes`` is the part the llama.cpp grammar (``grammar_schema``) shares too: the list of what a
compiled form leaves to the local check, as ``'keyword' at $.path``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from worker_llm_client.core.schema_walk import CONSTRAINT_KEYWORDS, DEFS

BY_TYPE = {
    "object": frozenset({"properties", "required", "additionalProperties", "patternProperties", "propertyNames",
                         "minProperties", "maxProperties", "dependentRequired", "dependentSchemas",
                         "unevaluatedProperties"}),
    "array": frozenset({"items", "prefixItems", "contains", "minContains", "maxContains", "minItems", "maxItems",
                        "uniqueItems", "unevaluatedItems"}),
    "string": frozenset({"minLength", "maxLength", "pattern", "format"}),
    "number": frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}),
}  # fmt: skip
BY_TYPE["integer"] = BY_TYPE["number"]
TYPED = frozenset().union(*BY_TYPE.values())  # keywords that apply to values of one type only
KEPT_NOTES = ("title", "description")
_TO_DEFINITION = re.compile(r"^#(/(\$defs|definitions)/([^/]|~[01])+)?$")


class Unfit(Exception):
    """The schema does not fit a dialect; ``reason`` names a keyword and a path, never a value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def kept_notes(node: Mapping[str, Any]) -> dict[str, Any]:
    """The annotations a compiled subschema keeps: its title and description."""
    return {key: node[key] for key in KEPT_NOTES if key in node}


def split_types(node: Mapping[str, Any], path: str, scalars_ok: bool) -> list[tuple[Mapping[str, Any], str]] | None:
    """A node whose ``type`` lists several types as one branch per type (the keywords of other
    types left out: they do not apply), or None when it needs no split."""
    types = node.get("type")
    if not isinstance(types, list) or len(types) < 2 or (scalars_ok and not {"object", "array"} & set(types)):
        return None
    if "anyOf" in node or "oneOf" in node:
        raise Unfit(f"'type' at {path} lists several types beside anyOf/oneOf")
    shared = {k: v for k, v in node.items() if k not in TYPED and k not in (*KEPT_NOTES, *DEFS, "type")}
    branches: list[tuple[Mapping[str, Any], str]] = []
    for kind in types:
        own = {k: v for k, v in node.items() if k in BY_TYPE.get(kind, ())}
        branches.append(({**shared, "type": kind, **own}, f"{path}<{kind}>"))
    return branches


def compiled_nodes(node: Any, above: int = 0) -> Iterator[tuple[Mapping[str, Any], int]]:
    """Every subschema of a compiled schema, with the objects nested down to it (itself included)."""
    if not isinstance(node, Mapping):
        return
    depth = above + ("properties" in node)
    yield node, depth
    for sub in [*(node.get("properties") or {}).values(), node.get("items"), *(node.get("anyOf") or ())]:
        yield from compiled_nodes(sub, depth)
    for key in DEFS:
        for sub in (node.get(key) or {}).values():
            yield from compiled_nodes(sub)


def check_limits(size: Mapping[str, int], limits: Mapping[str, int], provider: str) -> None:
    """Unfit when a size measured on the compiled form exceeds the provider's limit for it."""
    for what, limit in limits.items():
        if size[what] > limit:
            raise Unfit(f"{size[what]} {what} exceed {provider}'s limit of {limit}")


@dataclass
class Notes:
    """What a compiled form leaves to the local check, as ``'keyword' at $.path[: why]``."""

    root: Mapping[str, Any]
    unenforced: list[str] = field(default_factory=list)

    def note(self, keyword: str, path: str, why: str = "") -> None:
        self.unenforced.append(f"'{keyword}' at {path}" + (f": {why}" if why else ""))


@dataclass
class Compiler(Notes):
    """The walk both compilers share; ``body`` is each dialect's own form of a subschema."""

    unfit: ClassVar[frozenset[str]] = frozenset()  # keywords the dialect cannot express
    alone: ClassVar[str] = ""  # why what is beside a $ref is not sent

    def node(self, node: Any, path: str) -> dict[str, Any]:
        if not isinstance(node, Mapping):
            raise Unfit(f"the boolean subschema at {path} cannot be expressed")
        unfit = sorted(set(node) & self.unfit)
        if unfit:
            raise Unfit(f"'{unfit[0]}' at {path} is not supported")
        return self.ref(node, path) if "$ref" in node else self.body(node, path)

    def body(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:  # pragma: no cover - each dialect's own
        raise NotImplementedError

    def defs(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        return {
            key: {name: self.node(sub, f"{path}.{key}.{name}") for name, sub in node[key].items()}
            for key in DEFS
            if isinstance(node.get(key), Mapping)
        }

    def ref(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        """A reference to the root or to a definition: the compiled form keeps those where they
        were, while a property made nullable or a type list split moves what is below them."""
        ref = str(node["$ref"])
        if not _TO_DEFINITION.match(ref):
            raise Unfit(f"'$ref' at {path} points elsewhere than '#' or '#/$defs/<name>'")
        for key in node:
            if key in CONSTRAINT_KEYWORDS and key != "$ref":
                self.note(key, path, self.alone)
        return {"$ref": ref, **self.defs(node, path)}

    def union(self, node: Mapping[str, Any], path: str) -> list[dict[str, Any]]:
        if "anyOf" in node and "oneOf" in node:
            raise Unfit(f"'anyOf' and 'oneOf' at {path} in one subschema")
        key = "anyOf" if "anyOf" in node else "oneOf"
        if key == "oneOf":
            self.note("oneOf", path, "sent as anyOf (exactly one is checked locally)")
        return [self.node(sub, f"{path}.{key}[{i}]") for i, sub in enumerate(node[key])]

    def properties(self, node: Mapping[str, Any], path: str) -> tuple[Mapping[str, Any], list[str]]:
        """An object's declared properties and required names; a map or an undeclared required
        name cannot be sent with ``additionalProperties: false``."""
        props, extra = node.get("properties") or {}, node.get("additionalProperties", True)
        if extra is not False and (not props or (isinstance(extra, Mapping) and extra)):
            raise Unfit(f"the object at {path} allows any property name (a map)")
        required = list(node.get("required") or [])
        if not set(required) <= set(props):
            raise Unfit(f"'required' at {path} names a property 'properties' does not declare")
        return props, required
