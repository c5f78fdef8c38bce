"""A reply written against a compiled schema, restored to the canonical schema's terms.

OpenAI strict mode (``strict_schema``) sends every optional property required and nullable
(``WireSchema.nulls_added``), so the model writes null where it means "absent". ``restore_report``
drops those nulls before ``output_validation`` checks the reply against the canonical schema: a
null is dropped only where the canonical schema does not require the property and its subschema
does not accept null (``schema_walk.accepts_null``); every other value is left for the validator.
Following references and unions is bounded (``MAX_HOPS``, ``_MAX_RESTORE_DEPTH``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker_llm_client.core.schema_walk import MAX_HOPS, accepts_null, pointer

_MAX_RESTORE_DEPTH = 100  # replies are at most output_validation.MAX_REPLY_DEPTH (64) deep


def restore_report(report: Any, schema: Mapping[str, Any]) -> Any:
    """Undo ``nulls_added``: drop a property whose value is null where ``schema`` (the canonical one)
    does not require it and its subschema does not accept null. Follows properties, items,
    prefixItems, local ``$ref``, allOf, and the one anyOf/oneOf branch whose type fits the value."""
    return _restore(report, schema, schema, 0)


def _restore(value: Any, node: Any, root: Mapping[str, Any], depth: int) -> Any:
    if depth > _MAX_RESTORE_DEPTH or not isinstance(value, dict | list):
        return value
    views = _views(node, root, "object" if isinstance(value, dict) else "array")
    if isinstance(value, list):
        prefix: list[Any] = next((v["prefixItems"] for v in views if isinstance(v.get("prefixItems"), list)), [])
        items = next((v["items"] for v in views if "items" in v), None)
        return [_restore(x, prefix[i] if i < len(prefix) else items, root, depth + 1) for i, x in enumerate(value)]
    required = {name for view in views for name in view.get("required") or ()}
    restored = {}
    for key, item in value.items():
        subs = [
            v["properties"][key] for v in views if isinstance(v.get("properties"), Mapping) and key in v["properties"]
        ]
        if item is None and subs and key not in required and not all(accepts_null(s, root) for s in subs):
            continue
        restored[key] = _restore(item, subs[0], root, depth + 1) if subs else item
    return restored


def _views(node: Any, root: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    """The subschemas that apply to a value of JSON type ``kind`` at ``node``."""
    views: list[Mapping[str, Any]] = []
    todo = [node]
    while todo and len(views) < MAX_HOPS:
        current = todo.pop()
        if not isinstance(current, Mapping) or any(current is view for view in views):
            continue
        views.append(current)
        if "$ref" in current:
            todo.append(pointer(root, str(current["$ref"])))
        todo.extend(current["allOf"] if isinstance(current.get("allOf"), list) else ())
        for key in ("anyOf", "oneOf"):
            fitting = [b for b in current.get(key) or () if _fits(b, kind, root)]
            todo.extend(fitting if len(fitting) == 1 else ())
    return views


def _fits(node: Any, kind: str, root: Mapping[str, Any], hops: int = 0) -> bool:
    """Whether a value of JSON type ``kind`` may match ``node``, judged on its type (unknown: yes)."""
    if not isinstance(node, Mapping) or hops > MAX_HOPS:
        return node is not False
    if "$ref" in node and not _fits(pointer(root, str(node["$ref"])), kind, root, hops + 1):
        return False
    types = node.get("type", [kind])
    return kind in (types if isinstance(types, list) else [types])
