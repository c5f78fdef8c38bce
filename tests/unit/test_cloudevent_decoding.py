from __future__ import annotations

import base64

import pytest
from google.events.cloud.firestore_v1.types import DocumentEventData
from google.protobuf import json_format

from tests.events import document_event_bytes
from worker_llm_client.adapters.cloudevent_decoding import decode_event, run_id_from_attributes
from worker_llm_client.errors import EventDecodeError

ATTRS = {"id": "ev-1", "document": "flow_runs/run-7", "subject": "documents/flow_runs/run-7"}
DOC = {
    "status": "RUNNING",
    "steps": {
        "weekly-report.v2": {
            "type": "LLM_REPORT",
            "status": "READY",
            "dependsOn": ["a"],
            "inputs": {"vars": {"n": 1.5, "ok": True, "none": None}},
        }
    },
}


def _bytes() -> bytes:
    return document_event_bytes("demo", "run-7", DOC)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_bytes(), id="raw-protobuf"),
        pytest.param(base64.b64encode(_bytes()), id="base64-protobuf"),
        pytest.param(json_format.MessageToDict(DocumentEventData.pb().FromString(_bytes())), id="proto3-json-dict"),
        pytest.param(
            json_format.MessageToJson(DocumentEventData.pb().FromString(_bytes())).encode(), id="proto3-json-bytes"
        ),
    ],
)
def test_decodes_every_accepted_encoding(body: object) -> None:
    event = decode_event(ATTRS, body)
    assert event is not None
    assert event.snapshot is not None
    assert event.run_id == "run-7"
    assert event.event_id == "ev-1"
    step = event.snapshot.steps["weekly-report.v2"]
    assert (step.type, step.status, step.data["dependsOn"]) == ("LLM_REPORT", "READY", ["a"])
    assert step.data["inputs"]["vars"] == {"n": 1.5, "ok": True, "none": None}
    assert event.snapshot.update_time is not None
    assert event.snapshot.update_time.tzinfo is not None


@pytest.mark.parametrize(
    ("attributes", "run_id"),
    [
        ({"document": "flow_runs/r1"}, "r1"),
        ({"subject": "documents/flow_runs/r2"}, "r2"),
        ({"document": "flow_runs/r1", "subject": "documents/flow_runs/other"}, "r1"),
        ({"document": "other/r1"}, None),
        ({"document": "flow_runs/r1/sub/x"}, None),
        ({"subject": "documents/other/r1"}, None),
        ({"source": "//firestore.googleapis.com/projects/p/databases/(default)/documents/flow_runs/r1"}, None),
        ({}, None),
    ],
)
def test_run_id_comes_from_document_then_subject_never_source(attributes: dict, run_id: str | None) -> None:
    assert run_id_from_attributes(attributes) == run_id


def test_delete_event_has_no_snapshot() -> None:
    body = document_event_bytes("demo", "run-7", None, old=DOC)
    event = decode_event(ATTRS, body)
    assert event is not None
    assert event.snapshot is None


def test_other_collections_are_not_decoded() -> None:
    assert decode_event({"document": "users/u1"}, b"\x00garbage") is None


@pytest.mark.parametrize("body", [b"", None, b"\x0a\xff\xff", b"{not json", b"[1,2]", "bm90IGEgcHJvdG8=!"])
def test_undecodable_bodies_raise(body: object) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(ATTRS, body)
