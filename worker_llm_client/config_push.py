"""Prompts and LLM profiles from the repository -> Firestore, as immutable versions.

``prompts/<id>.yaml`` (template, systemInstruction, description, ``schema: <file in schemas/>``)
and the profiles file (``llm_profiles.yaml``: id -> profile) are the source of truth. A push
writes ``<collection>/{id}`` (the current version) and ``<collection>/{id}/versions/{n}`` (an
immutable copy) in one transaction, and only when the content hash changed: pushing the same
content twice writes nothing.
"""

from __future__ import annotations

import contextlib
import difflib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.cloud import firestore

from worker_llm_client.adapters.config_documents import ProfileDoc
from worker_llm_client.adapters.firestore_store import PROFILES as PROFILES  # re-exported: push targets
from worker_llm_client.adapters.firestore_store import PROMPTS as PROMPTS
from worker_llm_client.core.canonical import canonical_json, prompt_sha256, sha256_hex

_BOOKKEEPING = frozenset({"version", "sha256"})


class SourceError(ValueError):
    """A prompt or profile file is not valid; the message names the file and the problem."""


@dataclass(frozen=True)
class PushResult:
    """``version`` is the version written (or that a dry run would write); ``diff`` what changed."""

    collection: str
    doc_id: str
    version: int
    changed: bool
    diff: tuple[str, ...] = field(default=(), repr=False)


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
            ProfileDoc.model_validate({**body, "version": 1})
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


def push(
    db: firestore.Client, collection: str, doc_id: str, body: Mapping[str, Any], dry_run: bool = False
) -> PushResult:
    """Write a new version of ``doc_id`` when its sha256 changed; otherwise write nothing.

    ``dry_run`` reads the current version and reports what would change, writing nothing.
    """
    ref = db.collection(collection).document(doc_id)
    if dry_run:
        current = ref.get()
        data = (current.to_dict() or {}) if current.exists else None
        version = int((data or {}).get("version") or 0)
        changed = data is None or data.get("sha256") != body["sha256"]
        diff = tuple(diff_lines(f"{collection}/{doc_id}", data, body)) if changed else ()
        return PushResult(collection, doc_id, version + 1 if changed else version, changed, diff)

    @firestore.transactional
    def write(transaction: Any) -> PushResult:
        current = ref.get(transaction=transaction)
        data = current.to_dict() or {} if current.exists else {}
        version = int(data.get("version") or 0)
        if current.exists and data.get("sha256") == body["sha256"]:
            return PushResult(collection, doc_id, version, changed=False)
        document = {**body, "version": version + 1}
        transaction.create(ref.collection("versions").document(str(version + 1)), document)
        transaction.set(ref, document)
        return PushResult(collection, doc_id, version + 1, changed=True)

    result: PushResult = write(db.transaction())
    return result


def push_all(db: firestore.Client, root: Path) -> list[PushResult]:
    prompts = load_prompts(root / "prompts", root / "schemas")
    profiles = load_profiles(root / "llm_profiles.yaml")
    results = [push(db, PROMPTS, pid, body) for pid, body in prompts.items()]
    return results + [push(db, PROFILES, pid, body) for pid, body in profiles.items()]


def diff_lines(name: str, old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> Iterator[str]:
    """A unified diff per changed field: Firestore's current version against the repository."""
    before = {k: v for k, v in (old or {}).items() if k not in _BOOKKEEPING}
    after = {k: v for k, v in new.items() if k not in _BOOKKEEPING}
    label = f"v{(old or {}).get('version')}" if old else "(absent)"
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            yield from difflib.unified_diff(
                _lines(before.get(key)),
                _lines(after.get(key)),
                f"{name} {label} {key}",
                f"repository {key}",
                lineterm="",
            )


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) and value.lstrip().startswith("{"):
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    text = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return text.splitlines()
