"""Offline checks of prompts/, schemas/, llm_profiles.yaml and governance.yaml (no network).

Errors (exit 1):

- a prompt or profile file that does not load; a template that does not compile in the sandbox;
- a schema the function would refuse as SCHEMA_INVALID (``load_schema``: not valid draft 2020-12; a
  ``$ref``/``$dynamicRef`` that is remote, does not resolve or points into data; a nested ``$id``;
  nesting deeper than ``MAX_SCHEMA_DEPTH`` or text longer than ``MAX_SCHEMA_CHARS``; a ``pattern``
  RE2 cannot run, see ``core/schema_guard.py``);
- a prompt and an allowlisted profile that cannot work together (``wire_schema`` raises
  SCHEMA_INVALID: a root that admits no object, for a provider that only returns objects);
- a profile that is invalid or names a model outside ``allowedModels``; a fallback that is not a
  profile, is not in ``allowedLlmProfiles``, is disabled or names a model outside
  ``allowedModels``; fallbacks that form a cycle.

Notices:

- per prompt and per allowlisted, enabled profile: the dialect the provider takes the schema in,
  and each thing it will not enforce (``WireSchema.unenforced``, see ``core/schema_dialects.py``):
  only our local validation does;
- patterns, which are matched locally with RE2 (an ECMA-262 subset);
- generation settings the profile's provider ignores (topK on openai, seed on Anthropic,
  safetySettings off Gemini, thinkingBudget on OpenAI or below Anthropic's 1024);
- profiles no step may use (disabled, or not in ``allowedLlmProfiles``); a profile without pricing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from worker_llm_client.catalog.documents import parse_profile
from worker_llm_client.catalog.sources import SourceError, load_governance, load_profiles, load_prompts
from worker_llm_client.core.output_validation import load_schema
from worker_llm_client.core.prompt_rendering import compile_template
from worker_llm_client.core.schema_dialects import subschemas, wire_schema
from worker_llm_client.errors import SchemaInvalid, TemplateError
from worker_llm_client.execution_models import Profile, WireSchema

_RE2_SUBSET = (
    "matched locally with RE2, an ECMA-262 subset: no lookahead, lookbehind or backreferences; \\s is ASCII whitespace"
)
_HOW_SENT = {
    "gemini": "as Gemini's responseJsonSchema",
    "openai_strict": "in OpenAI strict mode",
    "openai": "to OpenAI with strict off",
    "anthropic": "as a Claude structured output",
    "json_object_schema": "as a llama.cpp grammar (json_object with a schema)",
    "json_object": "in the instructions only (JSON mode)",
}
_GEMINI = ("gemini", "vertex")
_ANTHROPIC = ("anthropic", "anthropic_vertex")
_OPENAI = ("openai", "openai_compatible")
_ANTHROPIC_MIN_THINKING = 1024


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
        bodies = load_profiles(root / "llm_profiles.yaml")
    except SourceError as exc:
        return [Finding("error", "sources", str(exc))]
    profiles = {pid: parse_profile(pid, {**body, "version": 1}) for pid, body in bodies.items()}
    allowed = governance["allowedLlmProfiles"]
    usable = [p for pid, p in profiles.items() if pid in allowed and p.enabled]
    findings = [f for prompt_id, body in prompts.items() for f in _lint_prompt(prompt_id, body, usable)]
    findings += [f for profile in profiles.values() for f in _lint_profile(profile, governance, profiles)]
    return findings + list(_fallback_cycles(profiles))


def _lint_prompt(prompt_id: str, body: Mapping[str, Any], usable: list[Profile]) -> Iterator[Finding]:
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
    for node, path in subschemas(schema):
        if "pattern" in node or "patternProperties" in node:
            yield Finding("notice", schema_where, f"{path}: patterns are {_RE2_SUBSET}")
    for profile in usable:
        yield from _pairing(f"{where} with {profile.profile_id}", schema, profile)


def _pairing(where: str, schema: Mapping[str, Any], profile: Profile) -> Iterator[Finding]:
    """What ``profile``'s provider will and will not enforce of ``schema``."""
    try:
        wire = wire_schema(schema, profile.provider, profile.structured_output)
    except SchemaInvalid as exc:
        yield Finding("error", where, exc.message)
        return
    said = f"provider {profile.provider}, dialect {wire.dialect}"
    yield Finding("notice", where, f"{said}: the schema is sent {_how(wire)}; {_count(wire)}")
    for item in wire.unenforced:
        yield Finding("notice", where, f"{said}: not enforced by the provider, checked locally only: {item}")


def _how(wire: WireSchema) -> str:
    if wire.dialect == "anthropic" and wire.schema is None:
        return "in the instructions only (no structured output)"
    return _HOW_SENT[wire.dialect] + (", optional properties as required and nullable" if wire.nulls_added else "")


def _count(wire: WireSchema) -> str:
    if not wire.unenforced:
        return "the provider enforces all of it"
    return f"{len(wire.unenforced)} thing(s) it does not enforce"


def _lint_profile(
    profile: Profile, governance: Mapping[str, frozenset[str]], profiles: Mapping[str, Profile]
) -> Iterator[Finding]:
    where = f"llm_profiles.yaml: {profile.profile_id}"
    if profile.model not in governance["allowedModels"]:
        yield Finding("error", where, f"model '{profile.model}' is not in governance.yaml allowedModels")
    if profile.profile_id not in governance["allowedLlmProfiles"]:
        yield Finding(
            "notice", where, "not in governance.yaml allowedLlmProfiles: steps naming it fail PROFILE_NOT_ALLOWED"
        )
    if not profile.enabled:
        yield Finding("notice", where, "disabled: steps naming it fail PROFILE_NOT_ALLOWED")
    if profile.pricing is None:
        yield Finding("notice", where, "no pricing: outputs.costUsd and llm.call costUsd will be null")
    usable = profile.enabled and profile.profile_id in governance["allowedLlmProfiles"]
    for governed, message in _fallback_problems(profile, governance, profiles):
        if governed and not usable:
            yield Finding("notice", where, f"{message} (an error once this profile is allowed)")
        else:
            yield Finding("error", where, message)
    yield from (Finding("notice", where, message) for message in _ignored_settings(profile))


def _fallback_problems(
    profile: Profile, governance: Mapping[str, frozenset[str]], profiles: Mapping[str, Profile]
) -> Iterator[tuple[bool, str]]:
    """Fallbacks a step could not use, each with whether governance (allowlists, ``enabled``) is
    why: those are errors only once ``profile`` itself is usable."""
    for fallback_id in profile.fallbacks:
        fallback = profiles.get(fallback_id)
        if fallback is None:
            yield False, f"fallback '{fallback_id}' is not a profile in llm_profiles.yaml"
            continue
        if fallback_id not in governance["allowedLlmProfiles"]:
            yield True, f"fallback '{fallback_id}' is not in governance.yaml allowedLlmProfiles"
        if not fallback.enabled:
            yield True, f"fallback '{fallback_id}' is disabled"
        if fallback.model not in governance["allowedModels"]:
            yield True, f"fallback '{fallback_id}' names model '{fallback.model}', not in governance.yaml allowedModels"


def _ignored_settings(profile: Profile) -> Iterator[str]:
    """Settings the adapter of ``profile``'s provider does not send."""
    provider, generation = profile.provider, profile.generation
    ignored = f"provider {provider} ignores it (not sent)"
    if generation.top_k is not None and provider == "openai":
        yield f"generation.topK: {ignored}"
    if generation.seed is not None and provider in _ANTHROPIC:
        yield f"generation.seed: {ignored}"
    if profile.safety_settings and provider not in _GEMINI:
        yield f"safetySettings are Gemini's: {ignored}"
    budget = generation.thinking_budget
    if budget is not None and provider in _OPENAI:
        yield f"generation.thinkingBudget: {ignored}"
    if budget is not None and provider in _ANTHROPIC and budget != 0 and budget < _ANTHROPIC_MIN_THINKING:
        yield f"generation.thinkingBudget under Anthropic's minimum ({_ANTHROPIC_MIN_THINKING}) is not sent"


def _fallback_cycles(profiles: Mapping[str, Profile]) -> Iterator[Finding]:
    """One error per cycle of fallbacks (per back edge of a depth-first search), at its first id."""
    state: dict[str, bool] = {}  # False: on the current path; True: done
    for start in sorted(profiles):
        if start in state:
            continue
        state[start], trail, stack = False, [start], [iter(profiles[start].fallbacks)]
        while stack:
            child = next(stack[-1], None)
            if child is None:
                state[trail.pop()] = True
                stack.pop()
            elif state.get(child) is False:
                cycle = trail[trail.index(child) :]
                first = cycle.index(min(cycle))
                ring = [*cycle[first:], *cycle[:first], min(cycle)]
                yield Finding("error", f"llm_profiles.yaml: {ring[0]}", f"fallbacks form a cycle: {' -> '.join(ring)}")
            elif child not in state and child in profiles:
                state[child] = False
                trail.append(child)
                stack.append(iter(profiles[child].fallbacks))
