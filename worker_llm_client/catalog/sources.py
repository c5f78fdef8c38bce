"""The catalog's source of truth in the repository, read and checked offline (no Firestore).

``prompts/<id>.yaml`` (template, systemInstruction, description, ``schema: <file in schemas/>``),
the profiles file (``llm_profiles.yaml``: id -> profile) and ``governance.yaml`` (the profiles steps
may use, the models profiles may name). Each loader returns the Firestore document bodies a push
writes (without ``version``), or raises ``SourceError`` naming the file and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from worker_llm_client.catalog.documents import ProfileDoc
from worker_llm_client.core.canonical import canonical_json, prompt_sha256, sha256_hex


class SourceError(ValueError):
    """A prompt or profile file is not valid; the message names the file and the problem."""


def load_prompts(prompts_dir: Path, schemas_dir: Path) -> dict[str, dict[str, Any]]:
    """Prompt id -> the Firestore document body (without version)."""
    return {path.stem: _prompt_body(path, schemas_dir) for path in sorted(prompts_dir.glob("*.yaml"))}


def _prompt_body(path: Path, schemas_dir: Path) -> dict[str, Any]:
    source = _yaml_mapping(path)
    if not isinstance(source.get("template"), str) or not isinstance(source.get("schema"), str):
        raise SourceError(f"{path}: 'template' and 'schema' (a file in {schemas_dir}) are required strings")
    schema_path = schemas_dir / source["schema"]
    try:
        schema_text = json.dumps(json.loads(schema_path.read_text(encoding="utf-8")), ensure_ascii=False)
    except (OSError, ValueError, RecursionError) as exc:
        raise SourceError(f"{path}: schema {schema_path} cannot be read as JSON: {type(exc).__name__}") from exc
    system = source.get("systemInstruction") or ""
    return {
        "template": source["template"],
        "systemInstruction": system,
        "outputSchema": schema_text,
        "description": str(source.get("description") or ""),
        "schemaFile": source["schema"],
        "sha256": prompt_sha256(source["template"], system, schema_text),
    }


def load_profiles(path: Path) -> dict[str, dict[str, Any]]:
    """Profile id -> the Firestore document body (without version), validated."""
    profiles: dict[str, dict[str, Any]] = {}
    for profile_id, body in _yaml_mapping(path).items():
        if not isinstance(body, Mapping):
            raise SourceError(f"{path}: profile '{profile_id}' must be a mapping")
        try:
            ProfileDoc.model_validate({**body, "version": 1}, context={"profile_id": str(profile_id)})
        except ValueError as exc:
            raise SourceError(f"{path}: profile '{profile_id}' is invalid: {exc}") from exc
        profiles[str(profile_id)] = {**body, "sha256": sha256_hex(canonical_json(dict(body)))}
    return profiles


def load_governance(path: Path) -> dict[str, frozenset[str]]:
    """``allowedLlmProfiles`` and ``allowedModels`` from governance.yaml."""
    source = _yaml_mapping(path)
    lists = {key: source.get(key) for key in ("allowedLlmProfiles", "allowedModels")}
    for key, value in lists.items():
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise SourceError(f"{path}: '{key}' must be a list of ids")
    return {key: frozenset(value) for key, value in lists.items()}  # type: ignore[arg-type]


def _yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SourceError(f"{path}: {exc}") from exc
    if not isinstance(value, dict):
        raise SourceError(f"{path}: expected a mapping at the top level")
    return value
