"""Hostile replies, schemas, templates, ids and event bodies through the real trigger loop (issue 10).

Each case runs a hostile step beside an ordinary one in the same run: the hostile step ends in a
recorded status and code within seconds, the ordinary one succeeds, the function stays up, and
the stub's call count shows that no model call was repeated. Hostile steps use the pro profile
(the stub scripts replies per model), ordinary ones the flash profile.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.gemini_stub import Reply
from devstack.services import LOOPBACK_OPENER
from tests.builders import step_data
from tests.schema_host import SchemaHost
from tests.schema_host import schema_host as serve_schemas
from tests.stacks import Stack
from worker_llm_client.catalog.documents import PROMPTS
from worker_llm_client.catalog.push import push
from worker_llm_client.core.canonical import prompt_sha256

pytestmark = pytest.mark.e2e
VARS = {"team": "search", "week": "2026-W47", "notes": ["reindex done"]}
HOSTILE_MODEL = "gemini-2.5-pro"
REQUESTS = 3  # pro-json allows 2 repairs: a reply that stays bad costs 3 requests
TERMINAL = ("SUCCEEDED", "FAILED")
VALID = {"title": "t", "summary": "s", "status": "on_track", "highlights": ["h"], "risks": [], "confidence": 0.5}


def _good() -> dict[str, Any]:
    return step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS)


def _hostile(**kwargs: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"prompt_id": "weekly_report", "profile": "pro-json", "vars": VARS}
    return step_data(**(values | kwargs))


def _run(stack: Stack, run_id: str, steps: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    stack.db.collection("flow_runs").document(run_id).set({"status": "RUNNING", "steps": steps})
    return stack.wait_for(run_id, lambda s: all(s[i]["status"] in TERMINAL for i in steps), timeout=timeout)


def _push_prompt(stack: Stack, run_id: str, template: str, schema: Any = None) -> str:
    prompt_id = f"hostile-{run_id[-8:]}"
    schema_text = schema if isinstance(schema, str) else json.dumps(schema or {"type": "object"})
    body = {"template": template, "systemInstruction": "", "outputSchema": schema_text, "description": ""}
    push(stack.db, PROMPTS, prompt_id, body | {"sha256": prompt_sha256(template, "", schema_text)})
    return prompt_id


def _assert_outcome(final: dict[str, Any], status: str, code: str | None) -> None:
    assert final["good"]["status"] == "SUCCEEDED", final["good"]
    bad = final["bad"]
    assert (bad["status"], bad.get("error", {}).get("code")) == (status, code), bad
    assert bad["attempt"] == 1


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


REPLIES: dict[str, tuple[list[Reply], str, str | None, int]] = {
    "nested-1000-deep": ([Reply.text(_nested(1000))] * REQUESTS, "FAILED", "OUTPUT_NOT_JSON", REQUESTS),
    "number-of-5000-digits": (
        [Reply.text('{"confidence": ' + "9" * 5000 + "}")] * REQUESTS,
        "FAILED",
        "OUTPUT_NOT_JSON",
        REQUESTS,
    ),
    "lone-surrogate": (
        [Reply.text(json.dumps(VALID).replace('"t"', '"\\ud800"'))] * REQUESTS,
        "FAILED",
        "OUTPUT_NOT_JSON",
        REQUESTS,
    ),
    "html-proxy-page-then-ok": ([Reply.html_page()], "SUCCEEDED", None, 2),
    "text-part-not-a-string-then-ok": ([Reply.text_part(["a", 1])], "SUCCEEDED", None, 2),
    "huge-response-id": ([Reply.ok().with_fields(responseId="r" * 1_100_000)], "SUCCEEDED", None, 1),
}


@pytest.mark.parametrize("case", REPLIES, ids=list(REPLIES))
def test_a_hostile_reply_ends_in_a_recorded_outcome(stack: Stack, stub: Any, run_id: str, case: str) -> None:
    replies, status, code, calls = REPLIES[case]
    stub.script(*replies, model=HOSTILE_MODEL)
    final = _run(stack, run_id, {"good": _good(), "bad": _hostile()})
    _assert_outcome(final, status, code)
    assert stub.calls(HOSTILE_MODEL) == calls and stub.calls() == calls + 1
    if status == "SUCCEEDED":
        assert len(final["bad"]["outputs"]["responseId"]) <= 256


@pytest.fixture
def schema_host() -> Iterator[SchemaHost]:
    with serve_schemas() as server:
        yield server


def _deep_schema(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "object"}
    for _ in range(depth):
        node = {"type": "object", "properties": {"x": node}}
    return node


SCHEMAS: dict[str, Callable[[str], Any]] = {
    "remote-ref": lambda url: {"$ref": f"{url}/s.json"},
    "ref-under-a-property-named-default": lambda url: {
        "type": "object",
        "properties": {"default": {"$ref": f"{url}/d.json"}},
    },
    "dynamic-ref": lambda url: {"$dynamicRef": f"{url}/d.json#meta"},
    "nested-id": lambda url: {"type": "object", "properties": {"a": {"$id": f"{url}/a.json", "$ref": "b.json"}}},
    "nested-160-deep": lambda url: _deep_schema(160),
}


@pytest.mark.parametrize("case", SCHEMAS, ids=list(SCHEMAS))
def test_a_hostile_schema_is_schema_invalid_with_no_request_anywhere(
    stack: Stack, stub: Any, run_id: str, schema_host: SchemaHost, case: str
) -> None:
    url = schema_host.url
    prompt_id = _push_prompt(stack, run_id, "Report on {{ team }}.", SCHEMAS[case](url))
    final = _run(stack, run_id, {"good": _good(), "bad": _hostile(prompt_id=prompt_id)})
    _assert_outcome(final, "FAILED", "SCHEMA_INVALID")
    assert schema_host.hits == 0 and stub.calls(HOSTILE_MODEL) == 0


def test_a_catastrophic_pattern_cannot_stall_the_instance(stack: Stack, stub: Any, run_id: str) -> None:
    schema = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^([a-z0-9]+-?)+$"}}}
    prompt_id = _push_prompt(stack, run_id, "An id for {{ team }}.", schema | {"required": ["id"]})
    stub.script(*[Reply.text(json.dumps({"id": "a" * 64 + "!"}))] * REQUESTS, model=HOSTILE_MODEL)
    final = _run(stack, run_id, {"good": _good(), "bad": _hostile(prompt_id=prompt_id)})
    _assert_outcome(final, "FAILED", "OUTPUT_SCHEMA_MISMATCH")
    assert stub.calls(HOSTILE_MODEL) == REQUESTS


TEMPLATES = {
    "huge-power": "{{ 10**5000 }}",
    "unknown-codec": "{{ 'x'.encode('rot13') }}",
    "twenty-million-characters": "{{ 'x' * 20000000 }}",
    "nested-loops-with-output": "{% for i in range(5000) %}{% for j in range(5000) %}xx{% endfor %}{% endfor %}",
    "nested-loops-without-output": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
    "a-reference-var-called": "{{ target.delete() }}",
}


@pytest.mark.parametrize("case", TEMPLATES, ids=list(TEMPLATES))
def test_a_hostile_template_is_template_error_without_a_model_call(
    stack: Stack, stub: Any, run_id: str, case: str
) -> None:
    target = stack.db.collection("targets").document(run_id)
    target.set({"keep": True})
    prompt_id = _push_prompt(stack, run_id, TEMPLATES[case])
    final = _run(stack, run_id, {"good": _good(), "bad": _hostile(prompt_id=prompt_id, vars={"target": target})})
    _assert_outcome(final, "FAILED", "TEMPLATE_ERROR")
    assert stub.calls(HOSTILE_MODEL) == 0 and target.get().exists
    assert TEMPLATES[case] not in final["bad"]["error"]["message"]


@pytest.mark.parametrize("prompt_id", ["__evil__", "..", "."])
def test_an_id_firestore_would_reject_is_invalid_step(stack: Stack, stub: Any, run_id: str, prompt_id: str) -> None:
    final = _run(stack, run_id, {"good": _good(), "bad": _hostile(prompt_id=prompt_id)})
    _assert_outcome(final, "FAILED", "INVALID_STEP")
    assert "promptId" in final["bad"]["error"]["message"] and stub.calls(HOSTILE_MODEL) == 0


def test_a_dependency_cycle_fails_its_steps_naming_the_cycle(stack: Stack, stub: Any, run_id: str) -> None:
    steps = {"good": _good(), "a": _hostile(depends_on=["b"]), "b": _hostile(depends_on=["a"])}
    final = _run(stack, run_id, steps)
    assert final["good"]["status"] == "SUCCEEDED"
    for step_id in ("a", "b"):
        error = final[step_id]["error"]
        assert (final[step_id]["status"], error["code"]) == ("FAILED", "INVALID_STEP") and "cycle" in error["message"]
    assert stub.calls(HOSTILE_MODEL) == 0


@pytest.mark.parametrize("step_id", ["报" * 120, "..", "."], ids=["120-cjk", "dot-dot", "dot"])
def test_a_step_id_that_does_not_fit_an_object_name_as_is_still_gets_one(
    stack: Stack, stub: Any, run_id: str, step_id: str
) -> None:
    final = _run(stack, run_id, {"good": _good(), step_id: _hostile()})
    step = final[step_id]
    assert step["status"] == "SUCCEEDED", step
    name = step["outputs"]["gcs_uri"].removeprefix(f"gs://{stack.bucket.name}/")
    assert len(name.encode()) <= 1024 and "/../" not in name and "/./" not in name
    assert stack.bucket.get_blob(name) is not None


def test_a_run_id_with_non_ascii_characters_is_executed(stack: Stack, stub: Any, run_id: str) -> None:
    unicode_id = f"报告-é-{run_id[-8:]}"
    final = _run(stack, unicode_id, {"good": _good()})
    assert final["good"]["status"] == "SUCCEEDED" and stub.calls() == 1
    assert stack.bucket.get_blob(final["good"]["outputs"]["gcs_uri"].removeprefix(f"gs://{stack.bucket.name}/"))


def test_a_body_of_newlines_is_acknowledged_and_the_function_stays_up(stack: Stack, stub: Any, run_id: str) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-source": "//firestore.googleapis.com/projects/e2e-project/databases/(default)",
        "ce-id": f"newlines-{run_id}",
        "ce-document": f"flow_runs/{run_id}",
        "Content-Type": "application/protobuf",
    }
    request = urllib.request.Request(f"{stack.function.url}/", data=b"\n" * 60_000, method="POST", headers=headers)
    with LOOPBACK_OPENER.open(request, timeout=30) as response:
        assert response.status == 200
    final = _run(stack, run_id, {"good": _good()})
    assert final["good"]["status"] == "SUCCEEDED"


def test_a_credential_in_vars_never_reaches_the_model(stack: Stack, stub: Any, run_id: str) -> None:
    """End to end: the request the stub receives carries the placeholder, not the key."""
    key = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"  # shaped like a Google API key, valid nowhere
    step = step_data(
        prompt_id="weekly_report", profile="flash-json", vars={"team": "core", "week": "W1", "notes": [f"key {key}"]}
    )
    final = _run(stack, run_id, {"s": step})["s"]
    assert final["status"] == "SUCCEEDED" and final["outputs"]["secretsRedacted"] == 1, final
    [request] = stub.requests
    sent = json.dumps(request.body)
    assert key not in sent and "[REDACTED:google-api-key:1]" in sent
