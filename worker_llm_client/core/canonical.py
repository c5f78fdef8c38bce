"""Canonical JSON and the hashes built on it (prompt sha256, request fingerprints)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_hex(data: bytes | str) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def prompt_sha256(template: str, system_instruction: str | None, output_schema: str) -> str:
    """The contract's prompt hash: template, systemInstruction ("" if none) and outputSchema text."""
    content = {"template": template, "systemInstruction": system_instruction or "", "outputSchema": output_schema}
    return sha256_hex(canonical_json(content))
