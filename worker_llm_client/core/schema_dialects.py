"""One canonical output schema, compiled for each provider's structured-output dialect.

A prompt's ``outputSchema`` (draft 2020-12, held to ``schema_guard``'s rules) is the contract, and
every reply is validated locally against all of it (``output_validation``) whatever a provider was
sent. ``wire_schema`` gives each provider the strictest form it accepts and lists in ``unenforced``
what that form leaves to the local check (``'keyword' at $.schema.path``). ``SchemaInvalid`` only
for a pairing that cannot work: a root that admits no object, for a provider that only returns
objects (OpenAI, Anthropic, JSON mode).

    provider (endpoint.structuredOutput)       first choice         falls back to
    gemini, vertex                             gemini               -
    openai; openai_compatible (json_schema)    openai_strict        openai: strict off, schema as is
    openai_compatible (json_object_schema)     json_object_schema   json_object
    openai_compatible (json_object)            json_object          -
    anthropic, anthropic_vertex                anthropic            anthropic with no schema

- **gemini** (ai.google.dev, structured output: the ``responseJsonSchema`` subset): the schema as
  is; keywords outside ``GEMINI_SCHEMA_KEYWORDS`` are not enforced, ``oneOf`` works as ``anyOf``.
- **openai_strict**: ``strict_schema``; **anthropic**: ``claude_schema`` (both on the rules of
  ``schema_compiler``); **json_object_schema** (llama.cpp grammars): ``grammar_schema``. Each
  compiles the whole schema or raises ``Unfit``, and this module falls back (``_FALLBACKS``).
- **json_object**: no schema on the wire: the endpoint only guarantees JSON.

Restoring a strict-mode reply is ``schema_restore``; reading a schema (``subschemas``, ``pointer``,
``accepts_null``) is ``schema_walk``. The names callers use are importable from here (``__all__``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from worker_llm_client.core.claude_schema import ANTHROPIC_FORMATS, claude_schema
from worker_llm_client.core.grammar_schema import grammar_schema
from worker_llm_client.core.schema_compiler import Unfit
from worker_llm_client.core.schema_restore import restore_report
from worker_llm_client.core.schema_walk import CONSTRAINT_KEYWORDS, accepts_null, pointer, subschemas
from worker_llm_client.core.strict_schema import OPENAI_FORMATS, strict_schema
from worker_llm_client.errors import SchemaInvalid
from worker_llm_client.execution_models import Dialect, Provider, StructuredOutput, WireSchema

__all__ = [
    "ANTHROPIC_FORMATS",
    "CONSTRAINT_KEYWORDS",
    "GEMINI_SCHEMA_KEYWORDS",
    "OPENAI_FORMATS",
    "accepts_null",
    "dialect_for",
    "pointer",
    "restore_report",
    "subschemas",
    "wire_schema",
]

# The responseJsonSchema subset Gemini documents, plus pure annotations it may ignore harmlessly.
GEMINI_SCHEMA_KEYWORDS = frozenset(
    {
        "$id", "$defs", "$ref", "$anchor", "$schema", "$comment", "type", "format", "title", "description",
        "enum", "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum", "anyOf", "oneOf",
        "properties", "additionalProperties", "required", "propertyOrdering",
    }
)  # fmt: skip
_WHOLE = "the whole schema"
_JSON_ONLY = "the endpoint only guarantees JSON"
_COMPILERS: dict[Dialect, Callable[[Mapping[str, Any]], WireSchema]] = {
    "openai_strict": strict_schema,
    "anthropic": claude_schema,
    "json_object_schema": grammar_schema,
}
# a schema a compiler finds Unfit: (what is named unfit, the dialect fallen back to, whether the
# schema is still sent, why the provider does not guarantee it)
_FALLBACKS: dict[Dialect, tuple[str, Dialect, bool, str]] = {
    "openai_strict": ("strict mode", "openai", True, "sent with strict off, so the provider does not guarantee it"),
    "anthropic": ("structured outputs", "anthropic", False, "sent in the instructions only"),
    "json_object_schema": ("grammar", "json_object", False, _JSON_ONLY),
}
_CACHE_SIZE = 256


def dialect_for(provider: Provider, structured_output: StructuredOutput | None = None) -> Dialect:
    """The dialect a provider is addressed in first; ``wire_schema`` may fall back from it."""
    if provider in ("gemini", "vertex"):
        return "gemini"
    if provider in ("anthropic", "anthropic_vertex"):
        return "anthropic"
    if provider == "openai_compatible" and structured_output in ("json_object_schema", "json_object"):
        return structured_output
    return "openai_strict"


_cache: dict[tuple[int, str, str | None], tuple[Mapping[str, Any], WireSchema]] = {}
_cache_lock = threading.Lock()


def wire_schema(
    schema: Mapping[str, Any], provider: Provider, structured_output: StructuredOutput | None = None
) -> WireSchema:
    """``schema`` as ``provider`` takes it. Memoized on the schema object: the parsed prompt schema
    (``load_schema``) is one object per schema text and is never mutated; the cache holds it, so
    its ``id`` cannot be reused by another object while the entry lives. Do not mutate the result."""
    key = (id(schema), provider, structured_output)
    hit = _cache.get(key)
    if hit is not None and hit[0] is schema:
        return hit[1]
    wire = _compile(schema, dialect_for(provider, structured_output), provider)
    with _cache_lock:
        if len(_cache) >= _CACHE_SIZE:
            del _cache[next(iter(_cache))]
        _cache[key] = (schema, wire)
    return wire


def _compile(schema: Mapping[str, Any], dialect: Dialect, provider: str) -> WireSchema:
    if dialect == "gemini":
        return WireSchema("gemini", schema, unenforced=tuple(_gemini_gaps(schema)))
    if dialect != "json_object_schema" and not _admits_object(schema):
        raise SchemaInvalid(
            f"outputSchema cannot be used with provider {provider}: its root admits no JSON object, and "
            f"{provider} ({dialect}) only returns objects; make the report an object"
        )
    if dialect == "json_object":
        return WireSchema("json_object", None, unenforced=(f"{_WHOLE}: {_JSON_ONLY}",))
    try:
        return _COMPILERS[dialect](schema)
    except Unfit as unfit:
        return _fall_back(schema, dialect, provider, unfit)


def _fall_back(schema: Mapping[str, Any], dialect: Dialect, provider: str, unfit: Unfit) -> WireSchema:
    """The dialect's fall-back form: the whole schema left to the local check, and why."""
    unfit_in, fallen_to, sent, why = _FALLBACKS[dialect]
    if not _admits_object(schema):  # only a grammar's root may admit no object: JSON mode would return one
        raise SchemaInvalid(
            f"outputSchema cannot be used with provider {provider}: its grammar converter cannot read it "
            f"({unfit.reason}), and in JSON mode the endpoint only returns objects"
        ) from unfit
    unenforced = (f"{unfit_in}: {unfit.reason}", f"{_WHOLE}: {why}")
    return WireSchema(fallen_to, schema if sent else None, unenforced=unenforced)


def _admits_object(schema: Mapping[str, Any]) -> bool:
    types = schema.get("type")
    if (isinstance(types, str) and types != "object") or (isinstance(types, list) and "object" not in types):
        return False
    if "const" in schema and not isinstance(schema["const"], dict):
        return False
    return not isinstance(schema.get("enum"), list) or any(isinstance(v, dict) for v in schema["enum"])


def _gemini_gaps(schema: Mapping[str, Any]) -> Iterator[str]:
    for node, path in subschemas(schema):
        for keyword in sorted((set(node) & CONSTRAINT_KEYWORDS) - GEMINI_SCHEMA_KEYWORDS):
            yield f"'{keyword}' at {path}"
        if "oneOf" in node:
            yield f"'oneOf' at {path}: Gemini treats it as anyOf (exactly one is checked locally)"
