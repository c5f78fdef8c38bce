"""The canonical schema for llama.cpp's JSON-schema grammars (dialect ``json_object_schema``).

Sources: llama.cpp ``grammars/README.md``; llama-cpp-python 0.3's ``llama_grammar.SchemaConverter``,
the server of ``make demo MODEL=local``.

The schema goes as is, less what the converter fails on (``_Grammar.clean``): patterns not anchored
``^...$``, with ``(?`` groups or class escapes; an empty ``items``; ``items`` beside
``prefixItems``, which it would apply to every item. The converter reads each subschema in its
first matching form ($ref, anyOf/oneOf, type list, const, enum, object, allOf, array, pattern,
format, length, type) and ignores the rest of it: numeric bounds, uniqueItems, not, if/then/else,
dependent*... (``_Grammar.form``; what it ignores is listed as unenforced).

``Unfit`` (``schema_dialects`` then sends the endpoint to ``json_object``) for a ref other than
``#/...``, a boolean subschema, or a subschema the converter cannot read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from worker_llm_client.core.schema_compiler import Notes, Unfit
from worker_llm_client.core.schema_walk import CONSTRAINT_KEYWORDS, IN_LIST, IN_MAP, IN_VALUE, pointer
from worker_llm_client.execution_models import WireSchema

_FORMATS = re.compile(r"^(uuid[1-5]?|date|time|date-time)$")
_REFUSED_PATTERN = re.compile(r"\(\?|\\[dDwWsSbBpPcuxk]")
_TYPES = frozenset({"string", "number", "integer", "boolean", "null", "array", "object"})

# the keywords the converter enforces at a subschema, and the subschemas it visits from there
_Form = tuple[set[str], list[tuple[Any, str]]]


def grammar_schema(schema: Mapping[str, Any]) -> WireSchema:
    """``schema`` as the grammar converter takes it, or ``Unfit``."""
    compiler = _Grammar(schema)
    sent = compiler.clean(schema, "$")
    compiler.root = sent
    compiler.check(sent, "$", set())
    return WireSchema("json_object_schema", sent, unenforced=tuple(compiler.unenforced))


def _listed(node: Mapping[str, Any], key: str, path: str) -> list[tuple[Any, str]]:
    return [(sub, f"{path}.{key}[{i}]") for i, sub in enumerate(node[key])]


class _Grammar(Notes):
    """llama-cpp-python's ``SchemaConverter``: ``clean`` leaves out what it refuses, ``check`` notes
    what each subschema's form leaves unenforced."""

    def clean(self, node: Any, path: str, key: str = "") -> Any:
        if isinstance(node, bool):
            if key == "additionalProperties":
                return node
            raise Unfit(f"the boolean subschema at {path} cannot be converted")
        if "$ref" in node and not str(node["$ref"]).startswith("#/"):
            raise Unfit(f"'$ref' at {path} is not a JSON pointer ('#/...')")
        out = {key: self.clean_child(key, value, f"{path}.{key}") for key, value in node.items()}
        pattern = node.get("pattern")
        if isinstance(pattern, str) and not (pattern[:1] == "^" and pattern[-1:] == "$" and len(pattern) > 1):
            self.note("pattern", path, "not anchored '^...$', which the grammar converter requires")
            del out["pattern"]
        elif isinstance(pattern, str) and _REFUSED_PATTERN.search(pattern):
            self.note("pattern", path, "the grammar converter takes no '(?' groups or class escapes")
            del out["pattern"]
        if out.get("items") == {} or ("prefixItems" in out and "items" in out):
            if out["items"]:
                self.note("items", path, "beside prefixItems the grammar would apply it to every item")
            del out["items"]  # an empty items schema: the converter fails on it, and it allows anything
        return out

    def clean_child(self, key: str, value: Any, path: str) -> Any:
        if key in IN_VALUE and isinstance(value, Mapping | bool):
            return self.clean(value, path, key)
        if key in IN_LIST and isinstance(value, list):
            return [self.clean(sub, f"{path}[{i}]") for i, sub in enumerate(value)]
        if key in IN_MAP and isinstance(value, Mapping):
            return {name: self.clean(sub, f"{path}.{name}") for name, sub in value.items()}
        return value

    def check(self, node: Mapping[str, Any], path: str, seen: set[int]) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        form, kids = self.form(node, path)
        for key in node:
            if key in CONSTRAINT_KEYWORDS and key not in form:
                self.note(key, path)
        for kid, kid_path in kids:
            if not isinstance(kid, Mapping):
                raise Unfit(f"'$ref' at {path} does not resolve")
            self.check(kid, kid_path, seen)

    def form(self, node: Mapping[str, Any], path: str) -> _Form:
        """The keywords the converter enforces at ``node`` (its first matching form), and the
        subschemas it visits."""
        if "$ref" in node:
            return {"$ref"}, [(pointer(self.root, node["$ref"]), "$" + node["$ref"][1:].replace("/", "."))]
        if node.get("oneOf") or "anyOf" in node:
            key = "oneOf" if node.get("oneOf") else "anyOf"
            if key == "oneOf":
                self.note("oneOf", path, "the grammar takes it as anyOf (exactly one is checked locally)")
            return {key}, _listed(node, key, path)
        if isinstance(node.get("type"), list) or "const" in node or "enum" in node:
            return {"type", "const" if "const" in node else "enum"}, []
        return self.container_form(node, path) or self.scalar_form(node, path)

    def container_form(self, node: Mapping[str, Any], path: str) -> _Form | None:
        kind, extra = node.get("type"), node.get("additionalProperties", True)
        if kind in (None, "object") and ("properties" in node or extra is not True):
            props = [(sub, f"{path}.properties.{name}") for name, sub in (node.get("properties") or {}).items()]
            more = [(extra, f"{path}.additionalProperties")] if isinstance(extra, Mapping) else []
            return {"type", "properties", "required", "additionalProperties"}, props + more
        if kind in (None, "object") and "allOf" in node:
            self.note("allOf", path, "the grammar merges only its branches' properties")
            return {"type", "allOf"}, self.merged(node["allOf"], path)
        if kind in (None, "array") and "items" in node:
            return {"type", "items", "minItems", "maxItems"}, [(node["items"], f"{path}.items")]
        if kind in (None, "array") and "prefixItems" in node:
            return {"type", "prefixItems"}, _listed(node, "prefixItems", path)
        return None

    def scalar_form(self, node: Mapping[str, Any], path: str) -> _Form:
        kind = node.get("type")
        if kind in (None, "string") and "pattern" in node:
            return {"type", "pattern"}, []
        if kind in (None, "string") and _FORMATS.match(str(node.get("format"))):
            return {"type", "format"}, []
        if kind == "string" and ("minLength" in node or "maxLength" in node):
            return {"type", "minLength", "maxLength"}, []
        if kind in _TYPES or not node:
            return {"type"}, []
        raise Unfit(f"the subschema at {path} has no form the grammar converter reads")

    def merged(self, parts: list[Any], path: str) -> list[tuple[Any, str]]:
        """The properties the converter merges from an allOf (and the anyOf inside it)."""
        flat = [sub for part in parts for sub in part.get("anyOf", [part])]
        found = [pointer(self.root, sub["$ref"]) if "$ref" in sub else sub for sub in flat]
        return [
            (sub, f"{path}.allOf.properties.{name}")
            for part in found
            for name, sub in (part or {}).get("properties", {}).items()
        ]
