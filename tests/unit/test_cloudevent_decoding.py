from __future__ import annotations

import base64
import itertools
import re
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, NamedTuple

import pytest
from google.events.cloud.firestore_v1.types import DocumentEventData
from google.protobuf import json_format

from devstack.cloudevents import document_event_bytes
from worker_llm_client.adapters.cloudevent_decoding import _looks_base64, decode_snapshot, run_id_from_attributes
from worker_llm_client.errors import EventDecodeError
from worker_llm_client.models import RunSnapshot

Pb: Any = DocumentEventData.pb()


class Decoded(NamedTuple):
    run_id: str
    snapshot: RunSnapshot | None


def decode_event(attributes: dict[str, Any], body: object) -> Decoded | None:
    """What the handler does with an event: the run id from its attributes, then its body."""
    run_id = run_id_from_attributes(attributes)
    return None if run_id is None else Decoded(run_id, decode_snapshot(run_id, body))


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


# --- run ids outside ASCII -------------------------------------------------------------------------

UNICODE_RUN_ID = "报告-é-run"


def as_wsgi_reads_raw_utf8(text: str) -> str:
    """What a WSGI server (gunicorn, werkzeug) hands over for a header sent as raw UTF-8 bytes:
    PEP 3333 environ strings are the bytes read as latin-1."""
    return text.encode("utf-8").decode("latin-1")


def as_binding_encodes(text: str) -> str:
    """The CloudEvents HTTP binding's header encoding: every character outside printable ASCII,
    and space, '"' and '%', percent-encoded as its UTF-8 bytes."""
    return "".join(
        ch if " " < ch < "\x7f" and ch not in '"%' else "".join(f"%{byte:02X}" for byte in ch.encode()) for ch in text
    )


@pytest.mark.parametrize(
    ("wire", "run_id"),
    [
        (as_wsgi_reads_raw_utf8, UNICODE_RUN_ID),
        (as_binding_encodes, UNICODE_RUN_ID),
        (as_wsgi_reads_raw_utf8, "100%-done é"),  # a '%' starting no %XX survives a sender that does not encode
        (as_binding_encodes, "100%-done é"),
        (as_binding_encodes, "a%41b"),  # the binding sends a literal '%' as %25
        (as_wsgi_reads_raw_utf8, "plain-run.v2"),
        (as_binding_encodes, "plain-run.v2"),
    ],
)
def test_run_ids_are_recovered_from_either_header_encoding(wire: Callable[[str], str], run_id: str) -> None:
    assert run_id_from_attributes({"document": wire(f"flow_runs/{run_id}")}) == run_id
    assert run_id_from_attributes({"subject": wire(f"documents/flow_runs/{run_id}")}) == run_id


def test_unicode_given_as_text_is_kept() -> None:
    """Structured-mode events and direct callers hand over text as it is."""
    assert run_id_from_attributes({"document": f"flow_runs/{UNICODE_RUN_ID}"}) == UNICODE_RUN_ID


@pytest.mark.parametrize(
    ("document", "run_id"),
    [
        ("flow_runs/a%zz", "a%zz"),  # not a %XX sequence: kept
        ("flow_runs/a%FF", "a%FF"),  # decodes to bytes that are not UTF-8: not the binding's doing, kept
        ("flow_runs/a%2Fb", None),  # an encoded '/' is still a path separator: no run document
        ("flow_runs/\xe9t\xe9", "\xe9t\xe9"),  # latin-1 text that is not UTF-8 mis-read: kept
    ],
)
def test_values_the_binding_could_not_have_produced_are_kept(document: str, run_id: str | None) -> None:
    assert run_id_from_attributes({"document": document}) == run_id


def test_non_text_attributes_are_ignored() -> None:
    assert run_id_from_attributes({"document": 7, "subject": ["documents/flow_runs/r"]}) is None
    assert run_id_from_attributes({"document": None, "subject": "documents/flow_runs/r"}) == "r"


def test_a_decoded_event_carries_the_unicode_run_id() -> None:
    attributes = {"id": "ev-1", "document": as_binding_encodes(f"flow_runs/{UNICODE_RUN_ID}")}
    event = decode_event(attributes, document_event_bytes("demo", UNICODE_RUN_ID, DOC))
    assert event is not None and event.snapshot is not None
    assert event.run_id == event.snapshot.run_id == UNICODE_RUN_ID


# --- hostile bodies --------------------------------------------------------------------------------


@pytest.mark.timeout(10)  # the backtracking base64 sniff took minutes on these; linear work takes milliseconds
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"\n" * 200_000 + b"!", id="newlines-then-garbage"),
        pytest.param(b"A" + b"\r\n" * 100_000 + b"=\x00", id="base64ish-then-garbage"),
        pytest.param(b"\n" * 200_000, id="only-newlines"),
        pytest.param(b" \t\r\n" * 50_000, id="only-whitespace"),
    ],
)
def test_huge_garbage_bodies_are_rejected_in_linear_time(body: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode_event(ATTRS, body)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"QUJD\n", id="base64-with-newline"),
        pytest.param(b"QUI=\r\n", id="one-pad"),
        pytest.param(b"QQ==  \n", id="two-pads-then-spaces"),
    ],
)
def test_base64_sniffing_accepts_what_it_accepted(body: bytes) -> None:
    """These are sniffed as base64 and decode to bytes that are not a protobuf: the error says so."""
    with pytest.raises(EventDecodeError, match="not a DocumentEventData protobuf"):
        decode_event(ATTRS, body)


def test_the_linear_sniff_accepts_exactly_what_the_old_pattern_did() -> None:
    old_pattern = re.compile(rb"[A-Za-z0-9+/\r\n]*={0,2}\s*")
    alphabet = [b"A", b"z", b"9", b"+", b"/", b"\r", b"\n", b"=", b" ", b"\t", b"\x0b", b"\x0c", b"-", b"\x00", b"{"]
    bodies = [b"".join(combo) for length in range(5) for combo in itertools.product(alphabet, repeat=length)]
    assert len(bodies) > 50_000
    assert [body for body in bodies if _looks_base64(body) != bool(old_pattern.fullmatch(body))] == []


def test_base64_is_sniffed_with_the_old_patterns_edge_cases() -> None:
    wrapped = base64.encodebytes(_bytes())  # 76-column lines, trailing newline
    event = decode_event(ATTRS, wrapped + b"  \t\n")
    assert event is not None and event.snapshot is not None
    with pytest.raises(EventDecodeError):
        decode_event(ATTRS, base64.b64encode(_bytes()).rstrip(b"=") + b"===")


def _pb_with(build: Callable[[Any], None]) -> bytes:
    message = Pb()
    message.value.fields["status"].string_value = SECRET
    build(message)
    return bytes(message.SerializeToString())


def _deep_json(depth: int) -> bytes:
    return b'{"value":' * depth + b"1" + b"}" * depth


SECRET = "SECRET-document-content"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_deep_json(100_000), id="json-nested-past-the-recursion-limit"),
        pytest.param(_pb_with(lambda m: setattr(m.value.update_time, "seconds", 10**15)), id="update-time-overflow"),
        pytest.param(_pb_with(lambda m: setattr(m.value.update_time, "seconds", 253_402_300_800)), id="year-10000"),
        pytest.param(
            _pb_with(lambda m: setattr(m.value.fields["t"].timestamp_value, "seconds", -(10**15))), id="value-overflow"
        ),
        pytest.param(
            _pb_with(lambda m: setattr(m.value.fields["t"].timestamp_value, "nanos", 2**31 - 1)),
            id="nanos-out-of-range",
        ),
        pytest.param("\udc80" + SECRET, id="str-with-a-lone-surrogate"),
        pytest.param([SECRET], id="a-json-array"),
    ],
)
def test_no_other_exception_escapes_and_no_content_is_told(body: object) -> None:
    with pytest.raises(EventDecodeError) as caught:
        decode_event(ATTRS, body)
    assert SECRET not in str(caught.value)


def _nested_map(depth: int) -> bytes:
    message = Pb()
    value = message.value.fields["status"]
    for _ in range(depth):
        value = value.map_value.fields["k"]
    value.string_value = SECRET
    return bytes(message.SerializeToString())


def _stack_depth() -> int:
    frame: FrameType | None = sys._getframe()
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


def test_running_out_of_stack_in_a_nested_map_is_an_undecodable_body() -> None:
    body = _nested_map(30)  # protobuf allows this depth; the stack here is made to not
    assert decode_event(ATTRS, body) is not None
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 40)
    try:
        with pytest.raises(EventDecodeError) as caught:
            decode_event(ATTRS, body)
    finally:
        sys.setrecursionlimit(limit)
    assert isinstance(caught.value.__cause__, RecursionError)
