"""End to end: a document written to the emulator triggers the function through the emulator's
own Eventarc delivery; the function runs under functions-framework in its own process."""

from __future__ import annotations

import base64
import json
import urllib.request
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.cloudevents import document_event_bytes, event_headers
from tests.builders import step_data
from tests.stacks import ROOT, Stack

pytestmark = pytest.mark.e2e
SCHEMA = json.loads((ROOT / "schemas" / "weekly_report.json").read_text())
VARS = {"team": "payments", "week": "2026-W47", "notes": ["cut p95 by 30%"]}


def _report(**kwargs: Any) -> dict[str, Any]:
    return step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS, **kwargs)


def _terminal(*step_ids: str) -> Any:
    return lambda steps: all(steps[s]["status"] in ("SUCCEEDED", "FAILED") for s in step_ids)


def test_ready_steps_run_through_the_trigger_and_nothing_else_is_touched(stack: Stack, stub: Any, run_id: str) -> None:
    untouched = {
        "notify": step_data(type="HTTP_CALL"),
        "later": _report(status="PENDING"),
        "blocked": _report(depends_on=["later"]),
    }
    steps = {"a": _report(), "b.v2": _report(), "digest": _report(depends_on=["a", "b.v2"]), **untouched}
    stack.db.collection("flow_runs").document(run_id).set({"status": "RUNNING", "steps": steps})
    final = stack.wait_for(run_id, _terminal("a", "b.v2", "digest"))
    assert {s: final[s]["status"] for s in ("a", "b.v2", "digest")} == dict.fromkeys(
        ("a", "b.v2", "digest"), "SUCCEEDED"
    )
    assert {s: final[s] for s in untouched} == untouched
    assert final["digest"]["startedAt"] >= max(final["a"]["finishedAt"], final["b.v2"]["finishedAt"])
    for step_id in ("a", "b.v2", "digest"):
        outputs = final[step_id]["outputs"]
        assert final[step_id]["attempt"] == 1 and outputs["llmCalls"] == 1 and outputs["cached"] is False
        blob = stack.bucket.get_blob(outputs["gcs_uri"].removeprefix(f"gs://{stack.bucket.name}/"))
        Draft202012Validator(SCHEMA).validate(json.loads(blob.download_as_bytes()))
    assert stub.calls() == 3


def test_a_duplicate_event_causes_no_second_model_call(stack: Stack, stub: Any, run_id: str) -> None:
    ref = stack.db.collection("flow_runs").document(run_id)
    written = ref.set({"status": "RUNNING", "steps": {"s1": _report()}})
    stack.wait_for(run_id, _terminal("s1"))
    original = document_event_bytes(
        "e2e-project", run_id, {"status": "RUNNING", "steps": {"s1": _report()}}, when=written.update_time
    )
    for attempt in range(3):  # the emulator never redelivers: re-POST what it sent, as Eventarc would
        request = urllib.request.Request(
            f"{stack.function.url}/",
            data=base64.b64encode(original),
            method="POST",
            headers=event_headers(run_id, event_id=f"dup-{attempt}"),
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    assert stub.calls() == 1
    assert stack.steps(run_id)["s1"]["attempt"] == 1
    conflicts = [
        line for line in stack.logs() if line.get("runId") == run_id and line["message"] == "step.claim_conflict"
    ]
    assert len(conflicts) == 3


def test_deleting_a_run_is_acknowledged_and_ignored(stack: Stack, stub: Any, run_id: str) -> None:
    ref = stack.db.collection("flow_runs").document(run_id)
    ref.set({"status": "RUNNING", "steps": {"x": step_data(type="HTTP_CALL")}})
    ref.delete()
    line = stack.wait_for_log(lambda entry: entry.get("runId") == run_id and entry.get("reason") == "document_deleted")
    assert line["severity"] == "INFO" and line["message"] == "event.ignored"
    assert stub.calls() == 0
