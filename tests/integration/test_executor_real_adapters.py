"""The use case wired with the real adapters (bootstrap) against emulator, fake GCS and stub."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.gemini_stub import Reply
from tests.builders import step_data
from tests.stacks import ROOT
from worker_llm_client.models import run_from_document

pytestmark = pytest.mark.integration
VARS = {"team": "core", "week": "2026-W47", "notes": ["shipped the claim loop"]}


def _put(db: Any, run_id: str, steps: dict[str, Any]) -> Any:
    ref = db.collection("flow_runs").document(run_id)
    result = ref.set({"status": "RUNNING", "steps": steps})
    return run_from_document(run_id, ref.get().to_dict(), result.update_time)


def _report_step(**kwargs: Any) -> dict[str, Any]:
    return step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS, **kwargs)


def test_ready_step_succeeds_with_a_schema_valid_artifact(
    executor: Any, db: Any, bucket: Any, stub: Any, run_id: str
) -> None:
    [report] = executor.handle(_put(db, run_id, {"weekly-report.v2": _report_step()}))
    assert report.status == "SUCCEEDED" and report.finalized
    step = db.collection("flow_runs").document(run_id).get().to_dict()["steps"]["weekly-report.v2"]
    outputs = step["outputs"]
    assert step["status"] == "SUCCEEDED" and step["attempt"] == 1 and outputs["llmCalls"] == 1
    name = outputs["gcs_uri"].removeprefix(f"gs://{bucket.name}/")
    assert name.startswith(f"flow_runs/{run_id}/weekly-report.v2/")
    blob = bucket.get_blob(name)
    report_json = json.loads(blob.download_as_bytes())
    schema = json.loads((ROOT / "schemas" / "weekly_report.json").read_text())
    Draft202012Validator(schema).validate(report_json)
    assert blob.metadata["runId"] == run_id and blob.metadata["stepId"] == "weekly-report.v2"
    assert blob.metadata["modelVersion"] == "stub-001" and blob.metadata["promptVersion"] == str(
        outputs["promptVersion"]
    )
    assert outputs["modelVersion"] == "stub-001" and outputs["responseId"] == blob.metadata["responseId"]
    assert outputs["usage"]["totalTokens"] > 0 and outputs["sizeBytes"] == blob.size


def test_two_executors_racing_on_one_snapshot_call_the_model_once(
    settings: Any, db: Any, stub: Any, run_id: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from worker_llm_client.bootstrap import build_executor

    snapshot = _put(db, run_id, {"s1": _report_step()})
    executors = [build_executor(settings) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda e: e.handle(snapshot), executors))
    for built in executors:
        built.close()
    assert sorted(len(r) for r in reports) == [0, 1]
    assert stub.calls() == 1


def test_a_bad_reply_fails_the_step_and_keeps_only_the_rejected_replies(
    executor: Any, db: Any, bucket: Any, stub: Any, run_id: str
) -> None:
    stub.script(Reply.text("definitely not json"), Reply.text("still not json"))  # flash-json allows 1 repair
    [report] = executor.handle(_put(db, run_id, {"s1": _report_step()}))
    step = db.collection("flow_runs").document(run_id).get().to_dict()["steps"]["s1"]
    assert (report.status, step["status"], step["error"]["code"], step["error"]["retryable"]) == (
        "FAILED",
        "FAILED",
        "OUTPUT_NOT_JSON",
        False,
    )
    [kept] = [blob.name for blob in bucket.list_blobs(prefix=f"flow_runs/{run_id}/")]
    assert kept.endswith(".attempt-1.invalid.json")  # the rejected replies, never a report
    assert step["error"]["message"].endswith(f"kept at gs://{bucket.name}/{kept}")


@pytest.mark.parametrize("takeover", ["reclaimed", "cancelled"])
def test_a_step_taken_over_during_the_model_call_is_not_overwritten(
    executor: Any, db: Any, stub: Any, run_id: str, takeover: str
) -> None:
    import threading

    from google.cloud.firestore_v1.field_path import FieldPath

    stub.script(Reply.delay(1.0))
    ref = db.collection("flow_runs").document(run_id)
    snapshot = _put(db, run_id, {"s.1": _report_step()})

    def take_over() -> None:
        assert stub.wait_for_calls(1, timeout=10)  # the model call is in flight
        field, value = ("claim", {"token": "other-worker"}) if takeover == "reclaimed" else ("status", "CANCELLED")
        ref.update({FieldPath("steps", "s.1", field).to_api_repr(): value})

    thread = threading.Thread(target=take_over)
    thread.start()
    [report] = executor.handle(snapshot)
    thread.join()
    step = ref.get().to_dict()["steps"]["s.1"]
    assert not report.finalized and "outputs" not in step
    assert step["status"] == ("RUNNING" if takeover == "reclaimed" else "CANCELLED")


def test_the_sweeper_finds_due_runs_with_one_query_and_redrives_them(
    executor: Any, db: Any, stub: Any, run_id: str
) -> None:
    from datetime import UTC, datetime, timedelta

    stub.script(Reply.http_error(503, "overloaded"))
    executor.handle(_put(db, run_id, {"s1": _report_step()}))
    ref = db.collection("flow_runs").document(run_id)
    doc = ref.get().to_dict()
    assert doc["steps"]["s1"]["status"] == "RETRY_WAIT" and doc["executor"]["wakeAt"] == doc["steps"]["s1"]["retryAt"]
    past = datetime.now(UTC) - timedelta(seconds=1)  # pretend the retry time has come
    ref.update({"steps.s1.retryAt": past, "executor.wakeAt": past})
    assert run_id in executor.runs.due_runs(datetime.now(UTC), 1000)
    report = executor.sweep(limit=1000)
    assert report.steps >= 1
    doc = ref.get().to_dict()
    assert doc["steps"]["s1"]["status"] == "SUCCEEDED" and doc["steps"]["s1"]["attempt"] == 2
    assert "wakeAt" not in doc.get("executor", {})
    assert run_id not in executor.runs.due_runs(datetime.now(UTC), 1000)
