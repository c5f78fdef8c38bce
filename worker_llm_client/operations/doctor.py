"""``doctor``: the environment against the allowlisted profiles, one line per check and what to fix.

Once, for the environment (profile ``-``)::

    ALLOWED_LLM_PROFILES / ALLOWED_MODELS   from the environment, else governance.yaml's (a warn)
    executor settings                       what Settings.require_executor_settings requires
    prompt P                                its schema loads (``load_schema``)

Then for every profile in ALLOWED_LLM_PROFILES::

    profile        it is in the catalog, valid and enabled
    model          its model is in ALLOWED_MODELS
    credentials    its provider's key is set (gemini GEMINI_API_KEY, openai OPENAI_API_KEY, anthropic
                   ANTHROPIC_API_KEY, openai_compatible its endpoint's apiKeyEnv when it names one) or,
                   from a Terraform plan, mounted from Secret Manager in every function; vertex and
                   anthropic_vertex: a project, a location, and ADC (resolved with --network only)
    fallback F     F is allowlisted, exists, is enabled, its model allowed, and does not loop back
    schema P       prompt P's schema compiles for the provider (``core.schema_dialects.wire_schema``);
                   what the provider will not enforce is listed: the reply is validated locally anyway
    endpoint       with --network only (``doctor_network``): one cheap authenticated call

No secret value is ever part of a line: checks name variables, and ``render``/``as_json`` also
redact every key value the settings hold, in case a provider's text quoted one. Exit code: 0 when
nothing FAILed, 1 otherwise (bad usage, 2, is the CLI's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from worker_llm_client.config import PROVIDER_KEY_ENVS, Settings
from worker_llm_client.errors import ConfigurationError, SchemaInvalid
from worker_llm_client.execution_models import Profile
from worker_llm_client.operations.doctor_sources import Catalog, Inputs

Level = Literal["ok", "warn", "FAIL"]
LEVELS: tuple[Level, ...] = ("ok", "warn", "FAIL")
ENVIRONMENT = "-"  # the profile column of a check that is about no one profile
VERTEX_PROVIDERS = frozenset({"vertex", "anthropic_vertex"})
VERTEX_ROLE = "roles/aiplatform.user"
NOTES_SHOWN = 3  # unenforced schema constraints written out on a text line (--json lists all)
MIN_REDACTED = 6  # shorter "keys" would blank out ordinary words
REDACTED = "[redacted]"
ENV_FILE_HINT = "python -m worker_llm_client env-file renders it from governance.yaml"
PROFILES_FIX = "fix it in llm_profiles.yaml and push it (python -m worker_llm_client profiles push)"


@dataclass(frozen=True)
class Check:
    level: Level
    profile: str
    name: str
    what: str
    fix: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Context:
    inputs: Inputs
    allowed_profiles: frozenset[str]
    allowed_models: frozenset[str]

    @property
    def catalog(self) -> Catalog:
        return self.inputs.catalog


Network = Callable[[Sequence[Profile], Settings], Mapping[str, Check]]


def diagnose(inputs: Inputs, network: Network | None = None) -> list[Check]:
    """Every check, environment first, then each allowlisted profile's in id order."""
    settings = inputs.settings
    profiles, profiles_check = _allowlist(inputs, "ALLOWED_LLM_PROFILES", settings.allowed_llm_profiles)
    models, models_check = _allowlist(inputs, "ALLOWED_MODELS", settings.allowed_models)
    ctx = _Context(inputs, profiles, models)
    checks = [profiles_check, models_check, _executor(inputs), *_prompts(inputs.catalog)]
    usable = [p for pid in sorted(profiles) if isinstance(p := ctx.catalog.profiles.get(pid), Profile) and p.enabled]
    reached = network(usable, settings) if network is not None else {}
    for profile_id in sorted(profiles):
        checks += _profile_checks(profile_id, ctx)
        if profile_id in reached:
            checks.append(reached[profile_id])
    return checks


def _allowlist(inputs: Inputs, variable: str, from_env: frozenset[str]) -> tuple[frozenset[str], Check]:
    key = "allowedLlmProfiles" if variable == "ALLOWED_LLM_PROFILES" else "allowedModels"
    if from_env:
        return from_env, Check("ok", ENVIRONMENT, variable, f"from {inputs.env_source}: {', '.join(sorted(from_env))}")
    if isinstance(inputs.governance, str):
        what = f"not set in {inputs.env_source}, and governance.yaml cannot be read ({inputs.governance})"
        return frozenset(), Check("FAIL", ENVIRONMENT, variable, what, f"set {variable} ({ENV_FILE_HINT})")
    listed = inputs.governance[key]
    if not listed:
        return listed, Check(
            "FAIL", ENVIRONMENT, variable, "empty: every step fails", f"list ids in governance.yaml {key}"
        )
    what = f"not set in {inputs.env_source}: checking governance.yaml's {key} instead: {', '.join(sorted(listed))}"
    fix = f"deploy it: without it the function allows nothing ({ENV_FILE_HINT})"
    return listed, Check("warn", ENVIRONMENT, variable, what, fix)


def _executor(inputs: Inputs) -> Check:
    settings = inputs.settings
    try:
        settings.require_executor_settings()
    except ConfigurationError as exc:
        fix = "set them in the function's environment (deploy/terraform/locals.tf, executor_env)"
        what = f"{str(exc).removeprefix('bad environment: ')} (in {inputs.env_source})"
        return Check("FAIL", ENVIRONMENT, "executor settings", what, fix)
    what = f"GOOGLE_CLOUD_PROJECT={settings.project}, ARTIFACTS_BUCKET={settings.artifacts_bucket}"
    return Check("ok", ENVIRONMENT, "executor settings", what)


def _prompts(catalog: Catalog) -> list[Check]:
    if not catalog.schemas:
        return [Check("warn", ENVIRONMENT, "prompts", f"none in {catalog.where}: no schema was checked")]
    fix = "fix the prompt or its schema (python -m worker_llm_client lint)"
    return [
        Check("FAIL", ENVIRONMENT, f"prompt {pid}", f"schema invalid: {schema}", fix)
        if isinstance(schema, str)
        else Check("ok", ENVIRONMENT, f"prompt {pid}", "schema loads")
        for pid, schema in sorted(catalog.schemas.items())
    ]


def _profile_checks(profile_id: str, ctx: _Context) -> list[Check]:
    found = ctx.catalog.profiles.get(profile_id)
    if found is None:
        fix = "add it to llm_profiles.yaml and push it, or take it out of ALLOWED_LLM_PROFILES"
        return [Check("FAIL", profile_id, "profile", f"not in {ctx.catalog.where}", fix)]
    if isinstance(found, str):
        return [Check("FAIL", profile_id, "profile", f"invalid: {found}", PROFILES_FIX)]
    enabled = Check("ok", profile_id, "profile", f"{found.provider} {found.model}, enabled")
    if not found.enabled:
        enabled = Check(
            "FAIL", profile_id, "profile", "disabled: steps naming it fail PROFILE_NOT_ALLOWED", PROFILES_FIX
        )
    return [enabled, _model(found, ctx), _credentials(found, ctx), *_fallbacks(found, ctx), *_schemas(found, ctx)]


def _model(profile: Profile, ctx: _Context) -> Check:
    if profile.model in ctx.allowed_models:
        return Check("ok", profile.profile_id, "model", f"{profile.model} is in ALLOWED_MODELS")
    fix = "add it to governance.yaml allowedModels and deploy, or change the profile's model"
    what = f"{profile.model} is not in ALLOWED_MODELS: steps fail MODEL_NOT_ALLOWED"
    return Check("FAIL", profile.profile_id, "model", what, fix)


def _credentials(profile: Profile, ctx: _Context) -> Check:
    settings = ctx.inputs.settings
    if profile.provider in VERTEX_PROVIDERS:
        return _vertex(profile, ctx)
    if profile.provider == "openai_compatible":
        name = profile.endpoint.api_key_env if profile.endpoint is not None else None
        if name is None:
            return Check("ok", profile.profile_id, "credentials", "none needed: the endpoint names no apiKeyEnv")
        return _key(profile.profile_id, name, bool(settings.endpoint_keys.get(name)), ctx)
    keys = {
        "gemini": settings.gemini_api_key,
        "openai": settings.openai_api_key,
        "anthropic": settings.anthropic_api_key,
    }
    return _key(profile.profile_id, PROVIDER_KEY_ENVS[profile.provider], bool(keys[profile.provider]), ctx)


def _key(profile_id: str, name: str, present: bool, ctx: _Context) -> Check:
    how = (
        "gemini_secret_id and gemini_api_key_version"
        if name == "GEMINI_API_KEY"
        else f'provider_secrets = {{ {name} = {{ secret = "...", version = "1" }} }}'
    )
    deployed = ctx.inputs.deployed
    if deployed is None:
        if present:
            return Check("ok", profile_id, "credentials", f"{name} is set")
        fix = f"set {name} (deployed: a Secret Manager secret, {how} in terraform.tfvars)"
        return Check("FAIL", profile_id, "credentials", f"{name} is not set in {ctx.inputs.env_source}", fix)
    if name in deployed.plain:
        what = f"{name} is a plain environment variable in the plan: its value is in the Terraform state"
        return Check("FAIL", profile_id, "credentials", what, f"mount it from Secret Manager instead ({how})")
    if name in deployed.secrets:
        return Check("ok", profile_id, "credentials", f"{name} is mounted from {deployed.secrets[name]}")
    mounted = deployed.partial.get(name, ())
    missing = [function for function in deployed.functions if function not in mounted]
    what = f"{name} is not mounted from Secret Manager in {', '.join(missing)}"
    what += f" (only in {', '.join(mounted)})" if mounted else ""
    return Check("FAIL", profile_id, "credentials", what, f"mount it in every function: {how} in terraform.tfvars")


def _vertex(profile: Profile, ctx: _Context) -> Check:
    settings, deployed = ctx.inputs.settings, ctx.inputs.deployed
    if not settings.project:
        what, fix = "GOOGLE_CLOUD_PROJECT is not set: Vertex AI needs it", "set it (and GOOGLE_CLOUD_LOCATION)"
        return Check("FAIL", profile.profile_id, "credentials", what, fix)
    if deployed is not None and VERTEX_ROLE not in deployed.project_roles:
        what = f"the plan grants no {VERTEX_ROLE}: the runtime cannot call Vertex AI"
        fix = "deploy/terraform/locals.tf vertex_allowlisted must cover this provider (iam.tf runtime_vertex)"
        return Check("FAIL", profile.profile_id, "credentials", what, fix)
    adc = "resolved below (--network)" if ctx.inputs.network else "not resolved offline (--network resolves it)"
    granted = f", {VERTEX_ROLE} granted" if deployed is not None else ""
    what = f"Vertex AI in project {settings.project}, location {settings.location}{granted}; ADC {adc}"
    return Check("ok", profile.profile_id, "credentials", what)


def _fallbacks(profile: Profile, ctx: _Context) -> list[Check]:
    return [_fallback(profile, fallback_id, ctx) for fallback_id in profile.fallbacks]


def _fallback(profile: Profile, fallback_id: str, ctx: _Context) -> Check:
    pid, name = profile.profile_id, f"fallback {fallback_id}"
    target = ctx.catalog.profiles.get(fallback_id)
    drop = f"or take it out of {pid}'s fallbacks"
    if fallback_id not in ctx.allowed_profiles:
        return Check("FAIL", pid, name, "not in ALLOWED_LLM_PROFILES: it is skipped", f"allowlist it {drop}")
    if target is None:
        return Check("FAIL", pid, name, f"not in {ctx.catalog.where}: it is skipped", f"add it {drop}")
    if isinstance(target, str):
        return Check("FAIL", pid, name, f"invalid: {target}", f"{PROFILES_FIX} {drop}")
    if not target.enabled:
        return Check("FAIL", pid, name, "disabled: it is skipped", f"enable it {drop}")
    if target.model not in ctx.allowed_models:
        return Check("FAIL", pid, name, f"{target.model} is not in ALLOWED_MODELS: it is skipped", f"allow it {drop}")
    if pid in target.fallbacks:
        what = f"circular: {fallback_id} falls back to {pid} in turn"
        fix = "fallbacks are not followed recursively: list in each profile every one it may fall to, without the loop"
        return Check("warn", pid, name, what, fix)
    if (target.provider, target.model) == (profile.provider, profile.model):
        what = f"the same {target.provider} {target.model}: it is down when {pid} is"
        return Check("warn", pid, name, what, "fall back to another model or provider")
    return Check("ok", pid, name, f"{target.provider} {target.model}, usable")


def _schemas(profile: Profile, ctx: _Context) -> list[Check]:
    from worker_llm_client.core.schema_dialects import dialect_for, wire_schema

    first = dialect_for(profile.provider, profile.structured_output)
    checks = []
    for prompt_id, schema in sorted(ctx.catalog.schemas.items()):
        if isinstance(schema, str):
            continue  # reported once, as the prompt's own check
        name = f"schema {prompt_id}"
        try:
            wire = wire_schema(schema, profile.provider, profile.structured_output)
        except SchemaInvalid as exc:
            fix = "change the schema, or use another provider for this prompt"
            checks.append(Check("FAIL", profile.profile_id, name, exc.message, fix))
            continue
        sent = wire.dialect + (" (strict)" if wire.strict else "") + (f", not {first}" if wire.dialect != first else "")
        checks.append(
            Check("ok", profile.profile_id, name, f"sent as {sent}; {_gaps(wire.unenforced)}", notes=wire.unenforced)
        )
    return checks


def _gaps(unenforced: tuple[str, ...]) -> str:
    if not unenforced:
        return "the provider enforces all of it"
    more = len(unenforced) - NOTES_SHOWN
    return "validated locally only: " + "; ".join(unenforced[:NOTES_SHOWN]) + (f"; +{more} more" if more > 0 else "")


# --- output ---------------------------------------------------------------------------------------


def exit_code(checks: Sequence[Check]) -> int:
    return 1 if any(check.level == "FAIL" for check in checks) else 0


def counts(checks: Sequence[Check]) -> dict[str, int]:
    return {level: sum(1 for check in checks if check.level == level) for level in LEVELS}


def render(checks: Sequence[Check], inputs: Inputs) -> str:
    """The text report: a header, one line per check, a summary line."""
    width = max((len(check.profile) for check in checks), default=1)
    network = "on" if inputs.network else "off (--network probes the endpoints)"
    lines = [f"doctor: environment from {inputs.env_source}; catalog from {inputs.catalog.where}; network {network}"]
    for check in checks:
        fix = f"  -> {check.fix}" if check.fix else ""
        lines.append(f"{check.level:<4}  {check.profile:<{width}}  {check.name}: {check.what}{fix}")
    tally = counts(checks)
    lines.append(f"doctor: {tally['ok']} ok, {tally['warn']} warn, {tally['FAIL']} FAIL")
    return redact("\n".join(lines), inputs.settings)


def as_json(checks: Sequence[Check], inputs: Inputs) -> str:
    """The report as one JSON document: its sources, every check (notes in full), the counts."""
    document = {
        "sources": {"environment": inputs.env_source, "catalog": inputs.catalog.where, "network": inputs.network},
        "checks": [
            {"level": c.level, "profile": c.profile, "check": c.name, "what": c.what, "fix": c.fix, "notes": c.notes}
            for c in checks
        ],
        "summary": counts(checks),
        "exitCode": exit_code(checks),
    }
    return redact(json.dumps(document, indent=2), inputs.settings)


def redact(text: str, settings: Settings) -> str:
    """``text`` with every key value ``settings`` holds replaced (a key is letters, digits, ``-_.``:
    JSON writes it as is)."""
    keys = [settings.gemini_api_key, settings.openai_api_key, settings.anthropic_api_key]
    keys += settings.endpoint_keys.values()
    for key in sorted({key for key in keys if key and len(key) >= MIN_REDACTED}, key=len, reverse=True):
        text = text.replace(key, REDACTED)
    return text
