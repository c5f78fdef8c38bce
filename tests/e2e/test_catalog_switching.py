"""Prompts and profiles are configuration: switching them, editing them and getting them wrong all
take effect through Firestore alone, with the function process never restarted."""

from __future__ import annotations

import time
from typing import Any

import pytest
from google.cloud.firestore_v1.field_path import FieldPath

from tests.builders import step_data
from tests.stacks import CONFIG_CACHE_SECONDS, Stack
from worker_llm_client.catalog.documents import PROFILES, PROMPTS
from worker_llm_client.catalog.push import push
from worker_llm_client.core.canonical import prompt_sha256

pytestmark = pytest.mark.e2e
REPORT_VARS = {"team": "search", "week": "2026-W47", "notes": ["reindex done"]}
DIGEST_VARS = {"week": "2026-W47", "teams": ["search", "payments"]}


def _done(step_id: str) -> Any:
    return lambda steps: steps[step_id]["status"] in ("SUCCEEDED", "FAILED")


def _rerun(stack: Stack, run_id: str, step_id: str, **inputs: Any) -> None:
    """What an orchestrator does to run a step again with other inputs."""
    ref = stack.db.collection("flow_runs").document(run_id)
    updates = {FieldPath("steps", step_id, "status").to_api_repr(): "READY"}
    updates |= {FieldPath("steps", step_id, "inputs", key).to_api_repr(): value for key, value in inputs.items()}
    ref.update(updates)


def test_switching_prompt_and_profile_changes_the_request_without_a_deploy(
    stack: Stack, stub: Any, run_id: str
) -> None:
    stack.db.collection("flow_runs").document(run_id).set(
        {
            "status": "RUNNING",
            "steps": {"s": step_data(prompt_id="weekly_report", profile="flash-json", vars=REPORT_VARS)},
        }
    )
    stack.wait_for(run_id, _done("s"))
    _rerun(stack, run_id, "s", promptId="weekly_digest", vars=DIGEST_VARS)
    stack.wait_for(run_id, lambda steps: steps["s"]["attempt"] == 2 and _done("s")(steps))
    _rerun(stack, run_id, "s", llm={"llmProfile": "pro-json"})
    final = stack.wait_for(run_id, lambda steps: steps["s"]["attempt"] == 3 and _done("s")(steps))

    first, second, third = (r.body for r in stub.requests)
    schema_titles = [b["generationConfig"]["responseJsonSchema"]["title"] for b in (first, second, third)]
    assert schema_titles == ["WeeklyReport", "WeeklyDigest", "WeeklyDigest"]
    assert [r.model for r in stub.requests] == ["gemini-2.5-flash", "gemini-2.5-flash", "gemini-2.5-pro"]
    assert (first["generationConfig"]["temperature"], third["generationConfig"]["temperature"]) == (0.2, 0.1)
    assert third["generationConfig"]["seed"] == 7 and third["generationConfig"]["topP"] == 0.9
    assert third["safetySettings"] == [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_ONLY_HIGH"}]
    outputs = final["s"]["outputs"]
    assert final["s"]["status"] == "SUCCEEDED"
    assert (outputs["promptId"], outputs["llmProfile"], outputs["model"]) == (
        "weekly_digest",
        "pro-json",
        "gemini-2.5-pro",
    )


def _prompt_body(
    template: str, schema: str = '{"type": "object", "properties": {"ok": {"type": "boolean"}}}'
) -> dict[str, Any]:
    return {
        "template": template,
        "systemInstruction": "",
        "outputSchema": schema,
        "description": "",
        "sha256": prompt_sha256(template, "", schema),
    }


def test_an_edit_pushed_to_a_prompt_is_used_after_the_ttl(stack: Stack, stub: Any, run_id: str) -> None:
    prompt_id = f"ttl-{run_id[-8:]}"
    v1 = push(stack.db, PROMPTS, prompt_id, _prompt_body("first wording for {{ team }}"))
    runs = stack.db.collection("flow_runs")
    runs.document(run_id).set(
        {"status": "RUNNING", "steps": {"s": step_data(prompt_id=prompt_id, profile="flash-json")}}
    )
    stack.wait_for(run_id, _done("s"))
    v2 = push(stack.db, PROMPTS, prompt_id, _prompt_body("second wording for {{ team }}"))
    time.sleep(CONFIG_CACHE_SECONDS + 0.5)  # the function's cache TTL, set to 1 s for this suite
    runs.document(f"{run_id}-b").set(
        {"status": "RUNNING", "steps": {"s": step_data(prompt_id=prompt_id, profile="flash-json")}}
    )
    after = stack.wait_for(f"{run_id}-b", _done("s"))
    assert (v1.version, v2.version) == (1, 2)
    assert after["s"]["outputs"]["promptVersion"] == 2
    assert stub.requests[-1].body["contents"][0]["parts"][0]["text"] == "second wording for core"


BAD = {
    "missing-prompt": (step_data(prompt_id="no-such-prompt", profile="flash-json"), "PROMPT_NOT_FOUND"),
    "missing-profile": (step_data(prompt_id="weekly_report", profile="absent", vars=REPORT_VARS), "PROFILE_NOT_FOUND"),
    "unlisted-profile": (
        step_data(prompt_id="weekly_report", profile="not-listed", vars=REPORT_VARS),
        "PROFILE_NOT_ALLOWED",
    ),
    "disabled-profile": (
        step_data(prompt_id="weekly_report", profile="disabled", vars=REPORT_VARS),
        "PROFILE_NOT_ALLOWED",
    ),
    "model-not-allowed": (
        step_data(prompt_id="weekly_report", profile="ghost-model", vars=REPORT_VARS),
        "MODEL_NOT_ALLOWED",
    ),
    "absent-var": (step_data(prompt_id="weekly_report", profile="flash-json", vars={"team": "x"}), "TEMPLATE_ERROR"),
    "unsafe-template": (step_data(prompt_id="e2e-unsafe", profile="flash-json"), "TEMPLATE_ERROR"),
    "invalid-schema": (step_data(prompt_id="e2e-bad-schema", profile="flash-json"), "SCHEMA_INVALID"),
}


def test_bad_configuration_fails_each_step_with_its_code_and_no_model_call(
    stack: Stack, stub: Any, run_id: str
) -> None:
    profile = {"provider": "gemini", "enabled": True, "generation": {}}
    push(stack.db, PROFILES, "disabled", {**profile, "model": "gemini-2.5-flash", "enabled": False, "sha256": "d" * 64})
    push(stack.db, PROFILES, "ghost-model", {**profile, "model": "gemini-1.0-retired", "sha256": "e" * 64})
    push(stack.db, PROMPTS, "e2e-unsafe", _prompt_body("{{ team.__class__.__mro__ }}"))
    push(stack.db, PROMPTS, "e2e-bad-schema", _prompt_body("hi", schema='{"type": 12}'))
    stack.db.collection("flow_runs").document(run_id).set(
        {"status": "RUNNING", "steps": {k: v for k, (v, _) in BAD.items()}}
    )
    final = stack.wait_for(run_id, lambda steps: all(_done(s)(steps) for s in BAD))
    assert {s: final[s]["error"]["code"] for s in BAD} == {s: code for s, (_, code) in BAD.items()}
    assert all(final[s]["status"] == "FAILED" and final[s]["error"]["retryable"] is False for s in BAD)
    assert stub.calls() == 0
    violation = stack.wait_for_log(
        lambda e: (
            e.get("runId") == run_id
            and e.get("stepId") == "model-not-allowed"
            and e["message"] == "governance.violation"
        )
    )
    assert (violation["profile"], violation["model"], violation["reason"]) == (
        "ghost-model",
        "gemini-1.0-retired",
        "model_not_in_allowlist",
    )
    assert violation["severity"] == "WARNING"


def test_the_profiles_timeout_and_repair_budget_reach_the_wire(stack: Stack, stub: Any, run_id: str) -> None:
    from devstack.gemini_stub import Reply

    stub.script(Reply.text("not json"), Reply.text('{"still": "wrong"}'))  # then schema-valid answers
    runs = stack.db.collection("flow_runs")
    runs.document(run_id).set(
        {
            "status": "RUNNING",
            "steps": {"s": step_data(prompt_id="weekly_report", profile="pro-json", vars=REPORT_VARS)},
        }
    )
    repaired = stack.wait_for(run_id, _done("s"))["s"]
    assert repaired["status"] == "SUCCEEDED" and repaired["outputs"]["llmCalls"] == 3  # pro-json: repairAttempts 2
    assert [c["role"] for c in stub.requests[2].body["contents"]] == ["user", "model", "user", "model", "user"]
    assert {r.headers["x-server-timeout"] for r in stub.requests} == {"120"}  # pro-json: timeoutSeconds 120

    stub.reset()
    stub.script(Reply.text("not json"), Reply.text("not json either"))
    runs.document(f"{run_id}-b").set(
        {
            "status": "RUNNING",
            "steps": {"s": step_data(prompt_id="weekly_report", profile="flash-json", vars=REPORT_VARS)},
        }
    )
    failed = stack.wait_for(f"{run_id}-b", _done("s"))["s"]
    assert (failed["status"], failed["error"]["code"], stub.calls()) == (
        "FAILED",
        "OUTPUT_NOT_JSON",
        2,
    )  # flash-json: 1 repair
    assert {r.headers["x-server-timeout"] for r in stub.requests} == {"60"}
