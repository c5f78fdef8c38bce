"""Reading a JSON Schema (draft 2020-12) by keyword semantics, for every dialect and for restoring.

- Which keywords constrain a reply (``CONSTRAINT_KEYWORDS``: the draft's assertions and
  applicators; our validator asserts ``format``) and which are annotations that constrain nothing.
- Where subschemas sit (``subschemas``): in a keyword's value (``items``, ``not``...), in a list
  (``anyOf``, ``prefixItems``...) or in a map (``properties``, ``$defs``...). A property named like a
  keyword (``properties.pattern``) is a subschema, never a keyword.
- Where a local reference points (``pointer``: ``#`` or a JSON pointer ``#/a/b``, RFC 6901 escapes).
- Whether a subschema lets a value be null (``accepts_null``), which OpenAI strict mode and
  ``restore_report`` both decide on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

CONSTRAINT_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "$ref", "$dynamicRef", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
        "properties", "required", "additionalProperties", "patternProperties", "propertyNames", "minProperties",
        "maxProperties", "dependentRequired", "dependentSchemas", "unevaluatedProperties", "items", "prefixItems",
        "contains", "minContains", "maxContains", "minItems", "maxItems", "uniqueItems", "unevaluatedItems",
        "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
        "exclusiveMaximum", "multipleOf",
    }
)  # fmt: skip
DEFS = ("$defs", "definitions")
IN_VALUE = ("additionalProperties", "contains", "else", "if", "items", "not", "propertyNames", "then",
            "unevaluatedItems", "unevaluatedProperties")  # fmt: skip
IN_LIST = ("allOf", "anyOf", "oneOf", "prefixItems")
IN_MAP = ("$defs", "definitions", "dependentSchemas", "patternProperties", "properties")
MAX_HOPS = 32  # $ref chains followed


def keyed_children(
    node: Mapping[str, Any], path: str, in_value: tuple[str, ...] = IN_VALUE
) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(keyword, subschema, path) for each subschema directly in ``node``, by keyword semantics;
    ``in_value``: the keywords whose value is a subschema."""
    for key in in_value:
        if isinstance(node.get(key), Mapping):
            yield key, node[key], f"{path}.{key}"
    for key in IN_LIST:
        for index, sub in enumerate(node[key] if isinstance(node.get(key), list) else ()):
            if isinstance(sub, Mapping):
                yield key, sub, f"{path}.{key}[{index}]"
    for key in IN_MAP:
        for name, sub in node[key].items() if isinstance(node.get(key), Mapping) else ():
            if isinstance(sub, Mapping):
                yield key, sub, f"{path}.{key}.{name}"


def children(node: Mapping[str, Any], path: str) -> Iterator[tuple[Any, str]]:
    """(subschema, path) for each subschema directly in ``node``, by keyword semantics."""
    for _, child, child_path in keyed_children(node, path):
        yield child, child_path


def subschemas(node: Mapping[str, Any], path: str = "$") -> Iterator[tuple[Mapping[str, Any], str]]:
    """``node`` and every subschema in it, with their paths (``$.properties.a``)."""
    yield node, path
    for child, child_path in children(node, path):
        yield from subschemas(child, child_path)


def pointer(root: Mapping[str, Any], ref: str) -> Any:
    """The subschema a local ``#`` / ``#/a/b`` reference points at, or None."""
    node: Any = root
    for part in ref[2:].split("/") if ref.startswith("#/") else [] if ref == "#" else [None]:
        if part is None:
            return None
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def accepts_null(node: Any, root: Mapping[str, Any], hops: int = 0) -> bool:
    """Whether ``node`` lets a value be null, judged on type, enum, const, $ref and the in-place
    applicators. Erring towards False is safe: such a property is sent nullable and its null dropped."""
    if not isinstance(node, Mapping) or hops > MAX_HOPS:
        return node is True
    types = node.get("type")
    checks = [
        types is None or "null" in (types if isinstance(types, list) else [types]),
        "const" not in node or node["const"] is None,
        not isinstance(node.get("enum"), list) or None in node["enum"],
        not isinstance(node.get("allOf"), list) or all(accepts_null(s, root, hops + 1) for s in node["allOf"]),
        "$ref" not in node or accepts_null(pointer(root, str(node["$ref"])), root, hops + 1),
    ]
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            checks.append(any(accepts_null(s, root, hops + 1) for s in node[key]))
    return all(checks)
