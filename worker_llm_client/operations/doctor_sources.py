"""What ``doctor`` checks, read from where it lives: an environment, a catalog, a Terraform plan.

- The environment: the process's, an env file as ``python -m worker_llm_client env-file`` renders it
  (``KEY: "value"`` YAML, gcloud's ``--env-vars-file`` format), or the functions' environment in a
  saved Terraform plan (``terraform show -json tfplan``): its plain variables with their values, and
  the variables mounted from Secret Manager by name only (a key's value never passes through
  Terraform). The plan is how the deploy pipeline checks the keys it cannot see.
- The catalog: the repository's ``llm_profiles.yaml``, ``prompts/`` and ``schemas/``, or the current
  documents of Firestore's ``llm_profiles`` and ``prompts``. Every profile and prompt is read on its
  own, so one that does not parse is reported without hiding the others.
- ``governance.yaml``: the allowlists doctor falls back to when the environment has none.

A file that cannot be read is ``OperatorError`` (exit 2): bad input, not a finding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from worker_llm_client.catalog.documents import PROFILES, PROMPTS, parse_profile, parse_prompt, validation_summary
from worker_llm_client.catalog.sources import SourceError, load_governance, load_prompts
from worker_llm_client.config import Settings
from worker_llm_client.core.output_validation import load_schema
from worker_llm_client.errors import SchemaInvalid
from worker_llm_client.execution_models import Profile
from worker_llm_client.operations import OperatorError

FUNCTION_RESOURCE = "google_cloudfunctions2_function"
PROJECT_GRANT_RESOURCE = "google_project_iam_member"


@dataclass(frozen=True)
class Catalog:
    """``profiles``: a profile, or why it is not valid; ``schemas``: a prompt's parsed schema, or why not."""

    where: str
    profiles: Mapping[str, Profile | str]
    schemas: Mapping[str, Mapping[str, Any] | str]


@dataclass(frozen=True)
class Deployed:
    """The functions' environment in a Terraform plan (``functions``: their addresses without the
    resource type): ``env`` (the first function's plain variables),
    ``secrets`` (name -> "secret S version V", mounted in every function), ``partial`` (name -> the
    functions that mount it, when not all do), ``plain`` (names set as plain variables somewhere) and
    the project roles the plan grants."""

    functions: tuple[str, ...]
    env: Mapping[str, str]
    secrets: Mapping[str, str]
    partial: Mapping[str, tuple[str, ...]]
    plain: frozenset[str]
    project_roles: frozenset[str]


@dataclass(frozen=True)
class Inputs:
    """``env_source`` says where ``settings`` came from; ``governance`` is why it is unreadable when a str."""

    settings: Settings
    env_source: str
    catalog: Catalog
    governance: Mapping[str, frozenset[str]] | str
    deployed: Deployed | None = None
    network: bool = False


def gather(root: Path, env_file: Path | None, plan: Path | None, firestore: bool, network: bool) -> Inputs:
    """The CLI's inputs: the environment (the process's, ``--env-file`` or ``--terraform-plan``), the
    catalog (``--root`` or ``--firestore``) and governance.yaml under ``root``."""
    deployed = read_plan(plan) if plan is not None else None
    if deployed is not None:
        env, env_source = deployed.env, f"the functions in {plan} ({', '.join(deployed.functions)})"
    elif env_file is not None:
        env, env_source = read_env_file(env_file), f"--env-file {env_file}"
    else:
        env, env_source = None, "the environment"
    settings = Settings.from_env(env)
    if firestore:
        from worker_llm_client.operations.store import connect

        client = connect()
        try:
            catalog = firestore_catalog(client)
        finally:
            client.close()
    else:
        catalog = repo_catalog(root)
    return Inputs(settings, env_source, catalog, governance(root), deployed, network)


# --- the environment ------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY: "value"`` lines (what ``env-file`` prints); numbers and booleans become their text."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise OperatorError(f"--env-file {path}: {type(exc).__name__}: cannot be read as YAML") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OperatorError(f"--env-file {path}: expected KEY: value lines (a YAML mapping)")
    env: dict[str, str] = {}
    for key, value in data.items():
        if not isinstance(key, str) or isinstance(value, dict | list):
            raise OperatorError(f"--env-file {path}: {key!r} is not a variable with a scalar value")
        env[key] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return env


def read_plan(path: Path) -> Deployed:
    """The functions' environment in ``terraform show -json`` output (its ``planned_values``)."""
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OperatorError(f"--terraform-plan {path}: {type(exc).__name__}: not the JSON of a plan") from exc
    planned = plan.get("planned_values") if isinstance(plan, dict) else None
    resources = list(_resources(planned.get("root_module") or {} if isinstance(planned, dict) else {}))
    services = {
        str(r.get("address")).removeprefix(f"{FUNCTION_RESOURCE}."): _service_config(r)
        for r in resources
        if r.get("type") == FUNCTION_RESOURCE
    }
    if not services:
        raise OperatorError(f"--terraform-plan {path}: no {FUNCTION_RESOURCE} in the plan's planned_values")
    mounts = {address: _mounts(service) for address, service in services.items()}
    names = {name for mounted in mounts.values() for name in mounted}
    everywhere = {name for name in names if all(name in mounted for mounted in mounts.values())}
    first = next(iter(sorted(services)))
    return Deployed(
        functions=tuple(sorted(services)),
        env=_plain_env(services[first]),
        secrets={name: mounts[first][name] for name in sorted(everywhere)},
        partial={n: tuple(a for a in sorted(mounts) if n in mounts[a]) for n in sorted(names - everywhere)},
        plain=frozenset(name for service in services.values() for name in _plain_env(service)),
        project_roles=frozenset(
            str(r.get("values", {}).get("role")) for r in resources if r.get("type") == PROJECT_GRANT_RESOURCE
        ),
    )


def _resources(module: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from (r for r in module.get("resources", []) if isinstance(r, dict))
    for child in module.get("child_modules", []):
        if isinstance(child, dict):
            yield from _resources(child)


def _service_config(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    configs = (resource.get("values") or {}).get("service_config") or [{}]
    return configs[0] if isinstance(configs, list) and isinstance(configs[0], dict) else {}


def _mounts(service: Mapping[str, Any]) -> dict[str, str]:
    mounted = service.get("secret_environment_variables") or []
    return {
        str(m["key"]): f"secret {m.get('secret', '?')} version {m.get('version', '?')}"
        for m in mounted
        if isinstance(m, dict) and m.get("key")
    }


def _plain_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment_variables") or {}
    return {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}


# --- the catalog ----------------------------------------------------------------------------------


def repo_catalog(root: Path) -> Catalog:
    """``llm_profiles.yaml``, ``prompts/`` and ``schemas/`` under ``root``."""
    profiles_file, prompts_dir = root / "llm_profiles.yaml", root / "prompts"
    if not profiles_file.is_file() or not prompts_dir.is_dir():
        raise OperatorError(f"{root} has no llm_profiles.yaml and prompts/: run from the repository or pass --root")
    try:
        source = yaml.safe_load(profiles_file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise OperatorError(f"{profiles_file}: {type(exc).__name__}: cannot be read as YAML") from exc
    if not isinstance(source, dict):
        raise OperatorError(f"{profiles_file}: expected a mapping of profile ids at the top level")
    profiles = {str(pid): _profile(str(pid), body, with_version=True) for pid, body in source.items()}
    try:
        prompts = load_prompts(prompts_dir, root / "schemas")
    except SourceError as exc:
        schemas: dict[str, Mapping[str, Any] | str] = {"(prompts)": str(exc)}
    else:
        schemas = {pid: _schema(body.get("outputSchema")) for pid, body in prompts.items()}
    return Catalog(f"{root}/ (llm_profiles.yaml, prompts/)", profiles, schemas)


def firestore_catalog(client: Any) -> Catalog:
    """The current documents of ``llm_profiles`` and ``prompts`` (``operations.store.connect``'s client)."""
    from worker_llm_client.operations.store import call_options, firestore_errors

    with firestore_errors(f"reading {PROFILES}"):
        profiles = {s.id: _profile(s.id, s.to_dict()) for s in client.collection(PROFILES).stream(**call_options())}
    with firestore_errors(f"reading {PROMPTS}"):
        schemas = {s.id: _stored_schema(s.id, s.to_dict()) for s in client.collection(PROMPTS).stream(**call_options())}
    return Catalog(f"Firestore {PROFILES}/ and {PROMPTS}/", profiles, schemas)


def _profile(profile_id: str, body: Any, with_version: bool = False) -> Profile | str:
    if not isinstance(body, dict):
        return "not a mapping"
    try:
        return parse_profile(profile_id, {**body, "version": 1} if with_version else body)
    except ValidationError as exc:
        return validation_summary(exc)
    except ValueError as exc:  # a validator's own message
        return str(exc).splitlines()[0]


def _stored_schema(prompt_id: str, body: Any) -> Mapping[str, Any] | str:
    try:
        prompt = parse_prompt(prompt_id, body if isinstance(body, dict) else {})
    except ValidationError as exc:
        return validation_summary(exc)
    return _schema(prompt.output_schema)


def _schema(text: Any) -> Mapping[str, Any] | str:
    try:
        return load_schema(text).schema
    except SchemaInvalid as exc:
        return exc.message


def governance(root: Path) -> Mapping[str, frozenset[str]] | str:
    """governance.yaml's allowlists, or why they cannot be read."""
    try:
        return load_governance(root / "governance.yaml")
    except SourceError as exc:
        return str(exc)
