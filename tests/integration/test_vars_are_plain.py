"""Vars read through the Firestore SDK (the sweeper's path) are plain values, rendered exactly as
the event path renders them, and inert (issue 10, item 5): before, a template's
``{{ target.delete() }}`` deleted a document with the function's credentials."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import T0, step_data
from worker_llm_client.catalog.documents import PROMPTS
from worker_llm_client.catalog.push import push
from worker_llm_client.core.canonical import prompt_sha256

pytestmark = pytest.mark.integration


def _prompt(db: Any, prompt_id: str, template: str) -> None:
    schema = '{"type": "object"}'
    body = {"template": template, "systemInstruction": "", "outputSchema": schema, "description": ""}
    push(db, PROMPTS, prompt_id, body | {"sha256": prompt_sha256(template, "", schema)})


def _due_retry(db: Any, run_id: str, prompt_id: str, target: Any) -> Any:
    step = step_data(prompt_id=prompt_id, profile="flash-json", vars={"target": target, "at": T0})
    step |= {"status": "RETRY_WAIT", "attempt": 1, "retryAt": T0}
    ref = db.collection("flow_runs").document(run_id)
    ref.set({"status": "RUNNING", "executor": {"wakeAt": T0}, "steps": {"s1": step}})
    return ref


def test_a_reference_var_renders_as_its_resource_name_on_the_sweepers_path(
    executor: Any, db: Any, stub: Any, run_id: str
) -> None:
    target = db.collection("targets").document(run_id)
    target.set({"keep": True})
    _prompt(db, f"ref-{run_id[-8:]}", "Look at {{ target }} as of {{ at }}.")
    ref = _due_retry(db, run_id, f"ref-{run_id[-8:]}", target)
    executor.handle(executor.runs.get_run(run_id))  # the sweeper's read: the SDK's to_dict()
    assert ref.get().to_dict()["steps"]["s1"]["status"] == "SUCCEEDED"
    [request] = stub.requests
    text = request.body["contents"][0]["parts"][0]["text"]
    name = f"projects/{db.project}/databases/(default)/documents/targets/{run_id}"
    assert text == f"Look at {name} as of 2026-11-22T12:00:00.000000Z."  # what the event path renders


def test_a_template_cannot_call_a_reference_vars_methods(executor: Any, db: Any, stub: Any, run_id: str) -> None:
    target = db.collection("targets").document(run_id)
    target.set({"keep": True})
    _prompt(db, f"del-{run_id[-8:]}", "{{ target.delete() }}")
    ref = _due_retry(db, run_id, f"del-{run_id[-8:]}", target)
    executor.handle(executor.runs.get_run(run_id))  # the sweeper's read: the SDK's to_dict()
    step = ref.get().to_dict()["steps"]["s1"]
    assert (step["status"], step["error"]["code"]) == ("FAILED", "TEMPLATE_ERROR")
    assert target.get().exists and stub.calls() == 0
