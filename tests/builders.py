"""Test-data builders: each selection or execution case is one short line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from devstack.documents import step_document as step_data
from worker_llm_client.core.canonical import prompt_sha256
from worker_llm_client.execution_models import GenerationSettings, LlmRequest, Profile, Prompt, SafetySetting, Turn
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


SAMPLING = GenerationSettings(temperature=0.3, top_p=0.9, top_k=20, max_output_tokens=512, seed=7, thinking_budget=0)


def make_request(**changes: Any) -> LlmRequest:
    """A model adapter's request (Gemini's unless changed): a terse system instruction, one user
    turn, ``REPORT_SCHEMA``, every sampling setting set (``SAMPLING``), a safety setting, 5 s."""
    values: dict[str, Any] = {
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "system_instruction": "Be terse.",
        "contents": (Turn("user", "Write the report."),),
        "response_schema": REPORT_SCHEMA,
        "generation": SAMPLING,
        "safety_settings": (SafetySetting("HARM_CATEGORY_HARASSMENT", "BLOCK_ONLY_HIGH"),),
        "timeout_seconds": 5.0,
    }
    return LlmRequest(**(values | changes))
