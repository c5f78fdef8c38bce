"""Opt-in: our Gemini adapter against the real Gemini Developer API.

Run with ``GEMINI_API_KEY=... .venv/bin/python -m pytest -m live``; excluded from ``make test``.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.stacks import ROOT
from worker_llm_client.adapters.gemini_client import GeminiClient
from worker_llm_client.config import Settings
from worker_llm_client.core.output_validation import load_schema, validate_reply
from worker_llm_client.execution_models import GenerationSettings, LlmRequest, Turn

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not os.environ.get("GEMINI_API_KEY"), reason="needs GEMINI_API_KEY"),
]


def test_real_gemini_returns_a_schema_valid_report() -> None:
    schema_text = json.dumps(json.loads((ROOT / "schemas" / "weekly_report.json").read_text()))
    output = load_schema(schema_text)
    client = GeminiClient(Settings(project="live", gemini_api_key=os.environ["GEMINI_API_KEY"]))
    request = LlmRequest(
        provider="gemini",
        model=os.environ.get("LIVE_GEMINI_MODEL", "gemini-2.5-flash"),
        system_instruction="You write terse engineering status reports.",
        contents=(Turn("user", "Weekly report for team payments: shipped card vaulting; PCI audit next week."),),
        response_schema=output.schema,
        generation=GenerationSettings(temperature=0.2, max_output_tokens=2048, thinking_budget=0),
        safety_settings=(),
        timeout_seconds=60,
    )
    try:
        result = client.generate(request)
    finally:
        client.close()
    report = validate_reply(result, output)
    assert report["status"] in ("on_track", "at_risk", "off_track")
    assert result.usage.total_tokens > 0 and result.model_version
