"""``main.handle_flow_run_event`` through functions-framework's own app and test client."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from functions_framework import create_app
from google.events.cloud.firestore_v1.types import DocumentEventData
from google.protobuf import json_format

from devstack.cloudevents import document_event_bytes, event_headers
from tests.builders import later, step_data
from tests.stacks import ROOT
from worker_llm_client import bootstrap
from worker_llm_client.config import settings

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
# Loaded only once an event has work: a cold instance that sees only no-op events never pays for them.
WORK_ONLY_MODULES = (
    "worker_llm_client.execution_models",
    "worker_llm_client.core.claim_planning",
    "worker_llm_client.execute_step",
    "worker_llm_client.produce_report",
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.genai",
    "openai",
    "anthropic",
    "jsonschema",
    "pydantic",
    "re2",
    "worker_llm_client.core.schema_guard",
    "worker_llm_client.core.template_sandbox",
    "worker_llm_client.core.render_budget",
    "worker_llm_client.core.render_estimates",
    "worker_llm_client.tracing",
    "worker_llm_client.core.secret_scan",
    "detect_secrets",
    "opentelemetry",
    "opentelemetry.sdk",
    "opentelemetry.trace",
)


class RecordingExecutor:
    def __init__(self) -> None:
        self.snapshots: list[Any] = []

    def handle(self, snapshot: Any) -> list[Any]:
        self.snapshots.append(snapshot)
        return []


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> RecordingExecutor:
    recording = RecordingExecutor()
    monkeypatch.setattr(bootstrap, "executor", lambda: recording)
    return recording


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "demo")
    settings.cache_clear()
    app = create_app("handle_flow_run_event", str(ROOT / "main.py"), "cloudevent")
    yield app.test_client()
    settings.cache_clear()


def _logs(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


READY_RUN = {"status": "RUNNING", "steps": {"weekly-report.v2": step_data()}}


def _bodies() -> dict[str, tuple[str, Any]]:
    raw = document_event_bytes("demo", "run-1", READY_RUN)
    as_json = json_format.MessageToJson(DocumentEventData.pb().FromString(raw))
    return {
        "raw-protobuf": ("application/protobuf", raw),
        "base64-protobuf": ("application/protobuf", base64.b64encode(raw)),
        "proto3-json": ("application/json", as_json),
    }


@pytest.mark.parametrize("encoding", ["raw-protobuf", "base64-protobuf", "proto3-json"])
def test_every_encoding_reaches_the_use_case(client: Any, recorder: RecordingExecutor, encoding: str) -> None:
    content_type, body = _bodies()[encoding]
    response = client.post("/", headers=event_headers("run-1", content_type=content_type), data=body)
    assert response.status_code == 200
    [snapshot] = recorder.snapshots
    assert snapshot.run_id == "run-1" and snapshot.steps["weekly-report.v2"].status == "READY"


@pytest.mark.parametrize(
    ("headers", "body", "reason"),
    [
        (event_headers("run-1"), b"\x0a\xff\xff\xff", "undecodable"),
        (event_headers("run-1", content_type="application/json"), b"{oops", "undecodable"),
        (
            {**event_headers("run-1"), "ce-document": "users/u1", "ce-subject": "documents/users/u1"},
            b"\x0a\x00",
            "not_a_flow_run_document",
        ),
        (event_headers("run-1"), document_event_bytes("demo", "run-1", None, old=READY_RUN), "document_deleted"),
        # our own write: a RUNNING step under lease and a finished one, nothing runnable
        (
            event_headers("run-1"),
            document_event_bytes(
                "demo",
                "run-1",
                {
                    "status": "RUNNING",
                    "steps": {
                        "a": step_data(
                            status="RUNNING", attempt=1, claim={"token": "t", "leaseExpiresAt": later(10**8)}
                        ),
                        "b": step_data(status="SUCCEEDED"),
                        "c": step_data(type="HTTP_CALL"),
                    },
                },
            ),
            "nothing_runnable",
        ),
        (
            event_headers("run-1"),
            document_event_bytes("demo", "run-1", {**READY_RUN, "status": "CANCELLED"}),
            "nothing_runnable",
        ),
    ],
)
def test_ignored_events_are_acknowledged_and_build_nothing(
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    headers: dict[str, str],
    body: bytes,
    reason: str,
) -> None:
    monkeypatch.setattr(bootstrap, "executor", lambda: pytest.fail("no client may be built for an ignored event"))
    capsys.readouterr()
    response = client.post("/", headers=headers, data=body)
    assert response.status_code == 200
    ignored = [line for line in _logs(capsys) if line["message"] == "event.ignored"]
    assert [line["reason"] for line in ignored] == [reason]


UNICODE_RUN_ID = "报告-é-run"


def _sent_as_raw_utf8(value: str) -> str:
    # Werkzeug's test client puts header strs into the WSGI environ unchanged, so a plain Unicode str
    # would reach the app as no server could deliver it. On the wire, gunicorn (production) and
    # werkzeug's server read header bytes as latin-1 (PEP 3333): passing the UTF-8 bytes read as
    # latin-1 is exactly what the function sees when a sender puts raw UTF-8 in the header.
    return value.encode("utf-8").decode("latin-1")


def _sent_percent_encoded(value: str) -> str:
    # What Eventarc sends: the CloudEvents HTTP binding percent-encodes the UTF-8 bytes of every
    # character outside printable ASCII, and space, '"' and '%'.
    return "".join(ch if " " < ch < "\x7f" and ch not in '"%' else quote(ch, safe="") for ch in value)


@pytest.mark.parametrize("wire", [_sent_as_raw_utf8, _sent_percent_encoded], ids=["raw-utf8", "percent-encoded"])
def test_a_non_ascii_run_id_reaches_the_use_case(
    client: Any, recorder: RecordingExecutor, wire: Callable[[str], str]
) -> None:
    headers = event_headers(UNICODE_RUN_ID)
    headers = {name: wire(value) if name in ("ce-document", "ce-subject") else value for name, value in headers.items()}
    body = document_event_bytes("demo", UNICODE_RUN_ID, READY_RUN)
    assert client.post("/", headers=headers, data=body).status_code == 200
    [snapshot] = recorder.snapshots
    assert snapshot.run_id == UNICODE_RUN_ID


@pytest.mark.parametrize(
    "body",
    [b"\n" * 200_000 + b"!", b"\n" * 200_000],
    ids=["newlines-then-garbage", "only-newlines"],
)
@pytest.mark.timeout(10)
def test_hostile_bodies_are_acknowledged_as_undecodable(
    client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], body: bytes
) -> None:
    monkeypatch.setattr(bootstrap, "executor", lambda: pytest.fail("no client may be built for an undecodable event"))
    capsys.readouterr()
    assert client.post("/", headers=event_headers("run-1"), data=body).status_code == 200
    ignored = [line for line in _logs(capsys) if line["message"] == "event.ignored"]
    assert [line["reason"] for line in ignored] == ["undecodable"]


def test_a_field_found_undecodable_while_claiming_acknowledges_the_event_as_undecodable(
    client: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Steps are decoded as they are read: a forged field the selection never reads fails later,
    in the claim, and must still end as an acknowledged undecodable event (never a 5xx loop)."""

    class ReadsTheClaim(RecordingExecutor):
        def handle(self, snapshot: Any) -> list[Any]:
            return [step.claim_token for step in snapshot.steps.values()]

    monkeypatch.setattr(bootstrap, "executor", ReadsTheClaim)
    message = DocumentEventData.pb().FromString(document_event_bytes("demo", "run-1", READY_RUN))
    step = message.value.fields["steps"].map_value.fields["weekly-report.v2"].map_value.fields["claim"]
    step.timestamp_value.seconds = -(10**15)
    capsys.readouterr()
    assert client.post("/", headers=event_headers("run-1"), data=message.SerializeToString()).status_code == 200
    ignored = [line for line in _logs(capsys) if line["message"] == "event.ignored"]
    assert [line["reason"] for line in ignored] == ["undecodable"]


def test_a_repeated_delivery_of_a_handled_event_is_acknowledged_without_work(
    client: Any, recorder: RecordingExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    body = document_event_bytes("demo", "run-1", READY_RUN)
    for event_id in ("ev-7", "ev-7", "ev-8"):
        assert client.post("/", headers=event_headers("run-1", event_id=event_id), data=body).status_code == 200
    assert len(recorder.snapshots) == 2  # ev-7 once, ev-8 once
    ignored = [line for line in _logs(capsys) if line["message"] == "event.ignored"]
    assert [(line["eventId"], line["reason"]) for line in ignored] == [("ev-7", "duplicate_delivery")]


SPAN_ID = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    ("trace_headers", "span_id", "sampled"),
    [
        pytest.param({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}, SPAN_ID, True, id="traceparent-header"),
        pytest.param({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-00"}, SPAN_ID, False, id="not-sampled"),
        pytest.param(
            {"X-Cloud-Trace-Context": f"{TRACE_ID}/{int(SPAN_ID, 16)};o=1"}, SPAN_ID, True, id="x-cloud-trace-context"
        ),
        pytest.param(
            {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01", "X-Cloud-Trace-Context": f"{'f' * 32}/1;o=0"},
            SPAN_ID,
            True,
            id="traceparent-wins",
        ),
        pytest.param({"ce-traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}, SPAN_ID, True, id="cloudevent-extension"),
    ],
)
def test_log_lines_follow_cloud_loggings_structured_format(
    client: Any,
    recorder: RecordingExecutor,
    capsys: pytest.CaptureFixture[str],
    trace_headers: dict[str, str],
    span_id: str,
    sampled: bool,
) -> None:
    """``time`` in RFC 3339 (Cloud Logging ignores a ``timestamp`` string), and the trace of the
    HTTP request: functions-framework does not copy its headers into the CloudEvent."""
    capsys.readouterr()
    headers = event_headers("run-1", event_id="ev-42") | trace_headers
    client.post("/", headers=headers, data=document_event_bytes("demo", "run-1", READY_RUN))
    [received] = [line for line in _logs(capsys) if line["message"] == "event.received"]
    assert received["severity"] == "INFO" and "timestamp" not in received
    assert datetime.fromisoformat(received["time"]).utcoffset() == timedelta(0) and received["time"].endswith("Z")
    assert received["runId"] == "run-1" and received["eventId"] == "ev-42"
    assert received["logging.googleapis.com/labels"] == {"runId": "run-1"}
    assert received["logging.googleapis.com/trace"] == f"projects/demo/traces/{TRACE_ID}"
    assert received["logging.googleapis.com/spanId"] == span_id
    assert received["logging.googleapis.com/trace_sampled"] is sampled


def test_a_malformed_setting_does_not_break_events_that_do_not_need_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from worker_llm_client.config import Settings
    from worker_llm_client.errors import ConfigurationError

    monkeypatch.setenv("LEASE_SECONDS", "ten minutes")
    settings.cache_clear()
    app = create_app("handle_flow_run_event", str(ROOT / "main.py"), "cloudevent")
    response = app.test_client().post(
        "/", headers=event_headers("run-1"), data=document_event_bytes("demo", "run-1", None, old=READY_RUN)
    )
    settings.cache_clear()
    assert response.status_code == 200
    with pytest.raises(ConfigurationError, match="LEASE_SECONDS must be an integer >= 1"):
        Settings.from_env(
            {"GOOGLE_CLOUD_PROJECT": "p", "ARTIFACTS_BUCKET": "b", "LEASE_SECONDS": "ten minutes"}
        ).require_executor_settings()


@pytest.mark.parametrize(
    ("query", "limit"),
    [("", 200), ("?limit=5", 5), ("?limit=99999", 1000), ("?limit=-3", 200), ("?limit=x", 200), ("?limit=%C2%B2", 200)],
)
def test_sweep_entry_point_reports_what_it_did(monkeypatch: pytest.MonkeyPatch, query: str, limit: int) -> None:
    from worker_llm_client.execute_step import SweepSummary

    asked: list[int] = []

    class Sweeper:
        def sweep(self, limit: int) -> SweepSummary:
            asked.append(limit)
            return SweepSummary(runs=2, steps=3, repaired=1)

    monkeypatch.setattr(bootstrap, "executor", Sweeper)
    app = create_app("sweep_flow_runs", str(ROOT / "main.py"), "http")
    response = app.test_client().post(f"/{query}")
    assert response.status_code == 200
    assert response.get_json() == {
        "runs": 2,
        "steps": 3,
        "repaired": 1,
        "failed": 0,
        "deferred": 0,
        "limit": limit,
        "overdueRuns": None,
        "oldestOverdueSeconds": None,
    } and asked == [limit]


# In a fresh interpreter: whatever this test session has imported already says nothing.
_COLD_INSTANCE = """
import json, sys
import main
from cloudevents.http.event import CloudEvent
from worker_llm_client import bootstrap

after_import = set(sys.modules)
bootstrap.executor = lambda: sys.exit("no executor may be built for a no-op event")
main.handle_flow_run_event(CloudEvent(json.loads(sys.argv[1]), sys.stdin.buffer.read()))
print(json.dumps({"afterImport": sorted(after_import), "afterEvent": sorted(sys.modules)}))
"""


def test_a_cold_instance_loads_no_work_only_module_for_a_noop_event() -> None:
    attributes = {
        "type": "google.cloud.firestore.document.v1.written",
        "source": "//firestore.googleapis.com/projects/demo/databases/(default)",
        "id": "ev-1",
        "document": "flow_runs/run-1",
    }
    own_write = document_event_bytes(
        "demo", "run-1", {"status": "RUNNING", "steps": {"b": step_data(status="SUCCEEDED")}}
    )
    result = subprocess.run(
        [sys.executable, "-c", _COLD_INSTANCE, json.dumps(attributes)],
        cwd=ROOT,
        input=own_write,
        capture_output=True,
        check=True,
    )
    *log, modules = result.stdout.decode().splitlines()
    loaded = json.loads(modules)
    assert [json.loads(line).get("reason") for line in log if "event.ignored" in line] == ["nothing_runnable"]
    assert "worker_llm_client.models" in loaded["afterImport"]
    for stage in ("afterImport", "afterEvent"):
        assert [m for m in WORK_ONLY_MODULES if m in loaded[stage]] == [], stage
