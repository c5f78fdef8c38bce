"""Run documents decoded as they are read, and sized from their bytes (issue 15)."""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from google.events.cloud.firestore_v1.types import DocumentEventData

from devstack.cloudevents import document_event_bytes
from tests.builders import T0, step_data
from worker_llm_client.adapters.cloudevent_decoding import decode_snapshot
from worker_llm_client.adapters.firestore_values import LazyFields, firestore_size_bound, run_snapshot
from worker_llm_client.core.document_size import document_size
from worker_llm_client.errors import EventDecodeError
from worker_llm_client.models import RUNS

Pb: Any = DocumentEventData.pb()
SECRET = "SECRET-var-value"  # pragma: allowlist secret


def _document(data: dict[str, Any]) -> Any:
    return Pb.FromString(document_event_bytes("p", "r1", data, when=T0)).value


def _lazy_steps(data: dict[str, Any]) -> LazyFields:
    steps = run_snapshot("r1", _document(data)).document["steps"]
    assert isinstance(steps, LazyFields)
    return steps


def test_a_step_decodes_to_the_same_values_as_a_whole_decode() -> None:
    data = {"status": "RUNNING", "steps": {"a": step_data(retryAt=T0, claim={"token": "t", "n": [1, 2.5, None]})}}
    snapshot = run_snapshot("r1", _document(data))
    assert copy.deepcopy(snapshot.document) == data and snapshot.steps["a"].data["retryAt"] == T0
    assert snapshot.update_time == T0 and snapshot.status == "RUNNING"


def test_a_field_that_cannot_be_decoded_fails_only_when_it_is_read_and_is_never_quoted() -> None:
    document = _document({"status": "RUNNING", "steps": {"a": step_data(vars={"when": SECRET})}})
    document.fields["steps"].map_value.fields["a"].map_value.fields["vars"].timestamp_value.seconds = -(10**15)
    snapshot = run_snapshot("r1", document)
    assert snapshot.steps["a"].status == "READY" and snapshot.steps["a"].type == "LLM_REPORT"
    with pytest.raises(EventDecodeError) as caught:
        snapshot.steps["a"].data.get("vars")
    assert SECRET not in str(caught.value) and "cannot be decoded" in str(caught.value)


def test_reading_a_missing_field_neither_finds_nor_adds_it() -> None:
    steps = _lazy_steps({"status": "RUNNING", "steps": {"a": step_data()}})
    step = steps["a"]
    fields = len(step)
    assert step.get("dependsOn") is None and "dependsOn" not in step and len(step) == fields
    with pytest.raises(KeyError):
        step["dependsOn"]
    assert "nope" not in steps and len(steps) == 1


def test_an_event_whose_step_cannot_be_decoded_is_decoded_until_that_step_is_read() -> None:
    body = document_event_bytes("p", "r1", {"status": "RUNNING", "steps": {"a": step_data()}})
    message = Pb.FromString(body)
    message.value.fields["steps"].map_value.fields["a"].map_value.fields["claim"].timestamp_value.nanos = 2**31 - 1
    snapshot = decode_snapshot("r1", message.SerializeToString())
    assert snapshot is not None and snapshot.steps["a"].status == "READY"
    with pytest.raises(EventDecodeError):
        snapshot.steps["a"].claim_token  # noqa: B018  # the read is the test


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["int", "negative", "str", "empty", "bool", "null", "float", "time"] + ["map", "list"] * (depth < 3)
    kind = rng.choice(kinds)
    if kind == "map":
        return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randrange(4))}
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        "int": rng.randrange(128),
        "negative": -rng.randrange(1, 10**12),
        "str": "é" * rng.randrange(1, 20),
        "empty": "",
        "bool": rng.random() < 0.5,
        "null": None,
        "float": rng.random(),
        "time": datetime(2026, 11, 26, tzinfo=UTC),
    }[kind]


@pytest.mark.parametrize("seed", range(40))
def test_the_size_bound_is_never_below_firestores_size(seed: int) -> None:
    rng = random.Random(seed)  # noqa: S311  # test data, not a secret
    data = {"status": "RUNNING", "steps": {f"s{i}": _random_value(rng) for i in range(rng.randrange(1, 30))}}
    data["ints"] = [rng.randrange(128) for _ in range(rng.randrange(50))]  # the worst case: small integers in arrays
    assert firestore_size_bound(_document(data), (RUNS, "r1")) >= document_size((RUNS, "r1"), data)


@pytest.mark.parametrize("seed", range(40))
def test_the_size_bound_from_an_events_own_bytes_is_never_below_firestores_size(seed: int) -> None:
    """An event's snapshot is sized from the ``value`` bytes it was parsed from (not serialized again)."""
    rng = random.Random(seed)  # noqa: S311  # test data, not a secret
    data = {"status": "RUNNING", "steps": {f"s{i}": _random_value(rng) for i in range(rng.randrange(1, 30))}}
    data["ints"] = [rng.randrange(128) for _ in range(rng.randrange(50))]
    snapshot = decode_snapshot("r1", document_event_bytes("p", "r1", data, when=T0))
    assert snapshot is not None and snapshot.size_bound is not None
    assert snapshot.size_bound >= document_size((RUNS, "r1"), data)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads under 128 bytes)."""
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_the_size_bound_holds_for_an_encoding_that_leaves_fields_out() -> None:
    """Map entries without a value, or without key and value, read as nulls under empty keys: the
    bytes are shorter than this module would write, the bound still covers Firestore's size."""
    entries = _field(1, _field(1, b"a")) + _field(1, b"") + _field(1, _field(1, b"b") + _field(2, b""))
    steps = _field(2, _field(1, b"steps") + _field(2, _field(6, entries)))  # Document.fields, a map_value
    document = _field(1, b"projects/p/databases/(default)/documents/flow_runs/r1") + steps
    snapshot = decode_snapshot("r1", _field(1, document))
    data = {"steps": {"a": None, "": None, "b": None}}
    assert snapshot is not None and copy.deepcopy(snapshot.document) == data
    assert len(document) < len(Pb.FromString(_field(1, document)).value.SerializeToString())
    assert snapshot.size_bound is not None and snapshot.size_bound >= document_size((RUNS, "r1"), data)


def test_the_size_bound_of_a_run_is_close_to_its_size() -> None:
    steps = {
        f"s{i:03d}": step_data(status="SUCCEEDED", attempt=1, outputs={"llmCalls": 1, "usage": {"a": 1}})
        for i in range(200)
    }
    data = {"status": "RUNNING", "steps": steps}
    exact = document_size((RUNS, "r1"), data)
    assert exact <= firestore_size_bound(_document(data), (RUNS, "r1")) <= 2 * exact


def _body(value: dict[str, Any] | None, old: dict[str, Any] | None) -> bytes:
    return document_event_bytes("p", "r1", value, old=old, when=T0)


def test_only_the_value_is_parsed_and_decodes_as_the_whole_message_would() -> None:
    run = {"status": "RUNNING", "steps": {"a": step_data(), "b": step_data(depends_on=["a"])}}
    body = _body(run, {"status": "RUNNING", "steps": {"a": step_data(status="RUNNING")}})
    snapshot = decode_snapshot("r1", body)
    whole = run_snapshot("r1", Pb.FromString(body).value)
    assert snapshot is not None and copy.deepcopy(snapshot.document) == copy.deepcopy(whole.document) == run
    assert snapshot.update_time == T0 and snapshot.size_bound == whole.size_bound


def test_an_old_value_is_never_parsed_and_a_deleted_document_has_no_snapshot() -> None:
    run = {"status": "RUNNING", "steps": {"a": step_data()}}
    body = _body(run, None) + b"\x12\x03\xff\xff\xff"  # an old_value that is not a Document
    snapshot = decode_snapshot("r1", body)
    assert snapshot is not None and snapshot.steps["a"].status == "READY"
    assert decode_snapshot("r1", _body(None, run)) is None


def test_a_value_given_twice_is_merged_as_protobuf_merges_it() -> None:
    first, second = _body({"status": "RUNNING"}, None), _body({"steps": {"a": step_data()}}, None)
    snapshot = decode_snapshot("r1", first + second)
    assert snapshot is not None and snapshot.status == "RUNNING" and set(snapshot.steps) == {"a"}


@pytest.mark.parametrize("tail", [b"\x0a\x80\x80", b"\x0a\x7f", b"\x0f", b"\x0a" + b"\xff" * 11])
def test_a_body_the_field_scan_cannot_read_is_judged_by_the_whole_parse(tail: bytes) -> None:
    body = _body({"status": "RUNNING"}, None) + tail
    with pytest.raises(EventDecodeError, match="not a DocumentEventData"):
        decode_snapshot("r1", body)
