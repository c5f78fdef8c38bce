"""The catalog's sources (``catalog/sources.py``) -> Firestore, as immutable versions.

A push writes ``<collection>/{id}`` (the current version) and ``<collection>/{id}/versions/{n}`` (an
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

from google.cloud import firestore

from worker_llm_client.catalog.documents import PROFILES, PROMPTS
from worker_llm_client.catalog.sources import load_profiles, load_prompts

_BOOKKEEPING = frozenset({"version", "sha256"})


@dataclass(frozen=True)
class PushResult:
    """``version`` is the version written (or that a dry run would write); ``diff`` what changed."""

    collection: str
    doc_id: str
    version: int
    changed: bool
    diff: tuple[str, ...] = field(default=(), repr=False)


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
