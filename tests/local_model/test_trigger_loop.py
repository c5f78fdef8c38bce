"""The real trigger loop on a real model: steps written to the emulator run through
functions-framework, the OpenAI adapter and llama.cpp's server, and store reports valid against
our schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.documents import step_document as step_data
from devstack.local_model import BOUNDED_SUFFIX, LOCAL_PROFILE, MODEL_ALIAS
from tests.stacks import ROOT, Stack

pytestmark = pytest.mark.local_model

WEEK = "2026-W47"
NOTES = {
    "payments": ["moved card vaulting to the new PSP", "refund latency p95 down to 1.2s", "PCI audit next week"],
    "search": ["reindex finished two days late", "query cache hit rate up to 71%", "paged twice for timeouts"],
}
PROMPTS = {"report-payments": "weekly_report", "report-search": "weekly_report", "digest": "weekly_digest"}
RUN_TIMEOUT_SECONDS = 240  # three requests of a few seconds each, one at a time, on a busy 2-core machine


def _step(prompt_id: str, variables: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return step_data(prompt_id=prompt_id + BOUNDED_SUFFIX, profile=LOCAL_PROFILE, vars=variables, **kwargs)


def _schema(prompt_id: str) -> dict[str, Any]:
    """The prompt's own schema (not the bounded copy the model was sent)."""
    return json.loads((ROOT / "schemas" / f"{prompt_id}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _words(value: Any) -> list[str]:
    """The words (three letters or more) in a report's strings."""
    if isinstance(value, str):
        return [word for word in value.split() if sum(char.isalpha() for char in word) >= 3]
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return [word for child in children for word in _words(child)]


def _settled(steps: dict[str, Any]) -> bool:
    return all(steps[s]["status"] in ("SUCCEEDED", "FAILED") for s in PROMPTS)


def test_three_steps_run_on_the_local_model_once_each_and_store_schema_valid_reports(
    local_stack: Stack, run_id: str
) -> None:
    steps = {
        "report-payments": _step("weekly_report", {"team": "payments", "week": WEEK, "notes": NOTES["payments"]}),
        "report-search": _step("weekly_report", {"team": "search", "week": WEEK, "notes": NOTES["search"]}),
        "digest": _step("weekly_digest", {"week": WEEK, "teams": list(NOTES)}, depends_on=["report-payments"]),
    }
    local_stack.db.collection("flow_runs").document(run_id).set({"status": "RUNNING", "steps": steps})

    final = local_stack.wait_for(run_id, _settled, timeout=RUN_TIMEOUT_SECONDS)

    outcome = {step_id: (final[step_id]["status"], final[step_id].get("error")) for step_id in PROMPTS}
    assert outcome == dict.fromkeys(PROMPTS, ("SUCCEEDED", None))
    assert final["digest"]["startedAt"] >= final["report-payments"]["finishedAt"]
    reports: list[Any] = []
    for step_id, prompt_id in PROMPTS.items():
        outputs = final[step_id]["outputs"]
        assert final[step_id]["attempt"] == 1 and outputs["cached"] is False
        assert (outputs["provider"], outputs["model"], outputs["modelVersion"]) == (
            "openai_compatible",
            MODEL_ALIAS,
            MODEL_ALIAS,
        )
        assert outputs["llmCalls"] == 1 and outputs["usage"]["outputTokens"] > 0
        assert outputs["costUsd"] == 0  # a local model's prices are 0
        blob = local_stack.bucket.get_blob(outputs["gcs_uri"].removeprefix(f"gs://{local_stack.bucket.name}/"))
        report = json.loads(blob.download_as_bytes())
        Draft202012Validator(_schema(prompt_id)).validate(report)
        reports.append(report)
    assert len(_words(reports)) >= 10, reports  # the model wrote words, not a stub's tokens
    written = [blob.name for blob in local_stack.bucket.list_blobs(prefix=f"flow_runs/{run_id}/")]
    assert len(written) == len(PROMPTS), written  # one report per step: each ran exactly once
