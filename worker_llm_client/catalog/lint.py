"""Offline checks of prompts/, schemas/, llm_profiles.yaml and governance.yaml (no network).

Errors (exit 1): a prompt or profile file that does not load, a template that does not compile in
the sandbox, a schema the function would refuse as SCHEMA_INVALID (``load_schema``: not valid
draft 2020-12; a ``$ref``/``$dynamicRef`` that is remote, does not resolve or points into data; a
nested ``$id``; nesting deeper than ``MAX_SCHEMA_DEPTH`` or text longer than ``MAX_SCHEMA_CHARS``;
a ``pattern`` RE2 cannot run, see ``core/schema_guard.py``), a profile that is invalid or names a
model outside ``allowedModels``. Notices: schema keywords that Gemini's ``responseJsonSchema`` does
not support, so only our local validation enforces them (``pattern``, ``minLength``, ``const``...),
``oneOf`` (Gemini treats it as ``anyOf``), and profiles no step may use because they are disabled or
not in ``allowedLlmProfiles``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from worker_llm_client.catalog.sources import SourceError, load_governance, load_profiles, load_prompts
from worker_llm_client.core.output_validation import load_schema
from worker_llm_client.core.prompt_rendering import compile_template
from worker_llm_client.errors import SchemaInvalid, TemplateError

# The responseJsonSchema subset Gemini documents, plus pure annotations it may ignore harmlessly.
GEMINI_SCHEMA_KEYWORDS = frozenset(
    {
        "$id", "$defs", "$ref", "$anchor", "$schema", "$comment", "type", "format", "title", "description",
        "enum", "items", "prefixItems", "minItems", "maxItems", "minimum", "maximum", "anyOf", "oneOf",
        "properties", "additionalProperties", "required", "propertyOrdering",
    }
)  # fmt: skip
_PATTERN_KEYWORDS = frozenset({"pattern", "patternProperties"})
_RE2_SUBSET = (
    "matched locally with RE2, an ECMA-262 subset: no lookahead, lookbehind or backreferences; \\s is ASCII whitespace"
)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("prefixItems", "anyOf", "oneOf", "allOf")
_SCHEMA_VALUES = ("items", "additionalProperties", "not", "contains", "if", "then", "else", "propertyNames",
                  "unevaluatedProperties", "unevaluatedItems")  # fmt: skip


@dataclass(frozen=True)
class Finding:
    level: Literal["error", "notice"]
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


def lint(root: Path) -> list[Finding]:
    try:
        governance = load_governance(root / "governance.yaml")
        prompts = load_prompts(root / "prompts", root / "schemas")
        profiles = load_profiles(root / "llm_profiles.yaml")
    except SourceError as exc:
        return [Finding("error", "sources", str(exc))]
    findings = [f for prompt_id, body in prompts.items() for f in _lint_prompt(prompt_id, body)]
    return findings + [f for pid, body in profiles.items() for f in _lint_profile(pid, body, governance)]


def _lint_prompt(prompt_id: str, body: Mapping[str, Any]) -> Iterator[Finding]:
    where = f"prompts/{prompt_id}.yaml"
    for field in ("template", "systemInstruction"):
        try:
            compile_template(body[field], field)
        except TemplateError as exc:
            yield Finding("error", where, exc.message)
    schema_where = f"{where} (schema {body.get('schemaFile', '?')})"
    try:
        schema = load_schema(body["outputSchema"]).schema
    except SchemaInvalid as exc:
        yield Finding("error", schema_where, exc.message)
        return
    yield from (Finding("notice", schema_where, message) for message in gemini_gaps(schema))


def gemini_gaps(schema: Mapping[str, Any], path: str = "$") -> Iterator[str]:
    """What Gemini will not enforce in ``schema``; our local validation still does."""
    for keyword in sorted(set(schema) - GEMINI_SCHEMA_KEYWORDS):
        how = f"; {_RE2_SUBSET}" if keyword in _PATTERN_KEYWORDS else ""
        yield f"{path}: '{keyword}' is enforced locally only (Gemini's responseJsonSchema does not support it){how}"
    if "oneOf" in schema:
        yield f"{path}: 'oneOf' is treated as 'anyOf' by Gemini; exactly-one is enforced locally only"
    for key in _SCHEMA_MAPS:
        for name, sub in (schema.get(key) or {}).items() if isinstance(schema.get(key), Mapping) else ():
            yield from _sub(sub, f"{path}.{key}.{name}")
    for key in _SCHEMA_LISTS:
        for index, sub in enumerate(schema.get(key) or []) if isinstance(schema.get(key), list) else ():
            yield from _sub(sub, f"{path}.{key}[{index}]")
    for key in _SCHEMA_VALUES:
        yield from _sub(schema.get(key), f"{path}.{key}")


def _sub(node: Any, path: str) -> Iterator[str]:
    if isinstance(node, Mapping):
        yield from gemini_gaps(node, path)


def _lint_profile(
    profile_id: str, body: Mapping[str, Any], governance: Mapping[str, frozenset[str]]
) -> Iterator[Finding]:
    where = f"llm_profiles.yaml: {profile_id}"
    if body.get("model") not in governance["allowedModels"]:
        yield Finding("error", where, f"model '{body.get('model')}' is not in governance.yaml allowedModels")
    if profile_id not in governance["allowedLlmProfiles"]:
        yield Finding(
            "notice", where, "not in governance.yaml allowedLlmProfiles: steps naming it fail PROFILE_NOT_ALLOWED"
        )
    if body.get("enabled") is False:
        yield Finding("notice", where, "disabled: steps naming it fail PROFILE_NOT_ALLOWED")
    if body.get("pricing") is None:
        yield Finding("notice", where, "no pricing: outputs.costUsd and llm.call costUsd will be null")
