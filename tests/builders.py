"""Test-data builders: each selection or execution case is one short line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.documents import step_document as step_data
from worker_llm_client.core.canonical import prompt_sha256
from worker_llm_client.execution_models import GenerationSettings, Profile, Prompt
from worker_llm_client.models import RunSnapshot, Step, run_from_document

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)

REPORT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "severity": {"type": "string", "enum": ["low", "medium", "high"]},
        "findings": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["title", "severity", "findings"],
    "additionalProperties": False,
}


def make_step(step_id: str = "s1", **kwargs: Any) -> Step:
    data = step_data(**kwargs)
    return Step(step_id, data["type"], data["status"], data)


def make_run(
    steps: dict[str, dict[str, Any]] | None = None,
    run_id: str = "run-1",
    status: str = "RUNNING",
    update_time: datetime | None = T0,
) -> RunSnapshot:
    return run_from_document(run_id, {"status": status, "steps": steps or {}}, update_time)


def make_prompt(
    prompt_id: str = "weekly",
    version: int = 1,
    template: str = "Weekly report for {{ team }}.",
    system: str = "You write terse reports.",
    schema: dict[str, Any] | str | None = None,
) -> Prompt:
    schema_text = schema if isinstance(schema, str) else json.dumps(schema or REPORT_SCHEMA)
    return Prompt(prompt_id, version, prompt_sha256(template, system, schema_text), template, system, schema_text)


def make_profile(profile_id: str = "fast", model: str = "gemini-2.5-flash", **kwargs: Any) -> Profile:
    defaults: dict[str, Any] = {
        "provider": "gemini",
        "version": 1,
        "enabled": True,
        "generation": GenerationSettings(temperature=0.2),
    }
    defaults.update(kwargs)
    return Profile(profile_id=profile_id, model=model, **defaults)


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)
