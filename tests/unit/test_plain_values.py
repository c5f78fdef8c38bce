"""``vars`` become the same plain JSON values on the event path and on the SDK (``get_run``) path."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1 import _helpers

from devstack.cloudevents import document_event_bytes
from tests.builders import make_profile, make_prompt, step_data
from worker_llm_client.adapters.cloudevent_decoding import decode_snapshot
from worker_llm_client.core.artifact_naming import request_fingerprint
from worker_llm_client.core.plain_values import MAX_BYTES, MAX_DEPTH, plain
from worker_llm_client.core.prompt_rendering import render
from worker_llm_client.core.step_inputs import parse_inputs
from worker_llm_client.errors import InvalidStep, TemplateError
from worker_llm_client.execution_models import GenerationSettings, LlmRequest, Turn
from worker_llm_client.models import RunSnapshot, run_from_document

WHEN = datetime(2026, 11, 22, 12, 0, 0, 123456, tzinfo=UTC)
FULL_NAME = "projects/p/databases/(default)/documents/targets/t1"


@pytest.fixture(scope="module")
def client() -> firestore.Client:
    return firestore.Client(project="p", credentials=AnonymousCredentials())  # builds references, never calls


def _vars(client: firestore.Client) -> dict[str, Any]:
    return {
        "target": client.collection("targets").document("t1"),
        "where": firestore.GeoPoint(48.85, 2.35),
        "when": WHEN,
        "raw": b"\x00\xffhi",
        "list": [1, 2.5, None, True, "x", {"z": 1, "a": [WHEN]}],
        "zmap": {"b": 1, "a": 2},
    }


def _event_path(data: dict[str, Any]) -> RunSnapshot:
    body = document_event_bytes("p", "run-1", data)
    snapshot = decode_snapshot("run-1", body)
    assert snapshot is not None
    return snapshot


def _sdk_path(data: dict[str, Any], client: firestore.Client) -> RunSnapshot:
    """What ``FirestoreRunStore.get_run`` builds: the SDK's own decoding, as ``to_dict()`` does it."""
    decoded = _helpers.decode_dict(_helpers.encode_dict(data), client)
    return run_from_document("run-1", decoded, WHEN)


def test_the_sdk_path_holds_live_client_objects_that_plain_turns_inert(client: firestore.Client) -> None:
    run = _sdk_path({"status": "RUNNING", "steps": {"s1": step_data(vars=_vars(client))}}, client)
    raw = run.steps["s1"].data["inputs"]["vars"]
    assert isinstance(raw["target"], firestore.DocumentReference)  # its delete() would delete the document
    assert plain(raw) == {
        "list": [1, 2.5, None, True, "x", {"a": ["2026-11-22T12:00:00.123456Z"], "z": 1}],
        "raw": "AP9oaQ==",
        "target": FULL_NAME,
        "when": "2026-11-22T12:00:00.123456Z",
        "where": {"latitude": 48.85, "longitude": 2.35},
        "zmap": {"a": 2, "b": 1},
    }


def test_both_paths_give_the_same_vars_the_same_text_and_the_same_fingerprint(client: firestore.Client) -> None:
    data = {"status": "RUNNING", "steps": {"s1": step_data(vars=_vars(client))}}
    template = "{{ target }} {{ when }} {{ where }} {{ raw }} {{ list }} {% for k, v in zmap.items() %}{{ k }}{{ v }}{% endfor %}"
    prompt, profile = make_prompt(template=template), make_profile()
    results = []
    for run in (_event_path(data), _sdk_path(data, client)):
        inputs = parse_inputs(run.steps["s1"], run.steps)
        rendered = render(prompt, inputs.vars)
        request = LlmRequest(
            "gemini", "gemini-2.5-flash", rendered.system_instruction, (Turn("user", rendered.user),),
            {}, GenerationSettings(), (), 30.0,
        )  # fmt: skip
        results.append((dict(inputs.vars), rendered.user, request_fingerprint(prompt, profile, request)))
    event, sdk = results
    assert event == sdk
    assert event[1].startswith(f"{FULL_NAME} 2026-11-22T12:00:00.123456Z {{'latitude': 48.85")
    assert event[1].endswith("a2b1")


def test_a_reference_var_is_text_to_a_template(client: firestore.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    deleted: list[str] = []
    monkeypatch.setattr(firestore.DocumentReference, "delete", lambda ref, *a, **k: deleted.append(ref.path))
    run = _sdk_path({"status": "RUNNING", "steps": {"s1": step_data(vars=_vars(client))}}, client)
    inputs = parse_inputs(run.steps["s1"], run.steps)
    with pytest.raises(TemplateError, match="StrictUndefined"):
        render(make_prompt(template="{{ target.delete() }}"), inputs.vars)
    assert deleted == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": (1, 2), "a": None}, {"a": None, "b": [1, 2]}),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))), "2026-01-02T01:04:05.000000Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05.000000Z"),  # noqa: DTZ001 (naive counts as UTC)
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
        (DatetimeWithNanoseconds(2026, 1, 2, 3, 4, 5, nanosecond=123456789, tzinfo=UTC), "2026-01-02T03:04:05.123456Z"),
        (bytearray(b"ab"), "YWI="),
        (firestore.DocumentReference("targets", "t1"), "targets/t1"),  # built without a client: no full name
        (True, True),
        (2**62, 2**62),
        (-0.5, -0.5),
        ("报告", "报告"),
    ],
)
def test_plain_values(value: object, expected: object) -> None:
    assert plain(value) == expected


class _Opaque:
    def __repr__(self) -> str:
        return "s3cr3t"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": {"b": [1, math.nan]}}, r"^inputs\.vars\.a\.b\[1\] is not a JSON value \(a non-finite number\)$"),
        ({"a": math.inf}, r"^inputs\.vars\.a is not a JSON value"),
        ({"a": {1: "s3cr3t"}}, r"^inputs\.vars\.a has a key that is not a string$"),
        ({"a b": {"s3cr3t"}}, r"^inputs\.vars\['a b'\] is not a JSON value \(set\)$"),
        ({"a": [_Opaque()]}, r"^inputs\.vars\.a\[0\] is not a JSON value \(_Opaque\)$"),
        ({"a": "\ud800s3cr3t"}, r"^inputs\.vars\.a is not valid UTF-8 text$"),
        ({"a": "x" * MAX_BYTES}, rf"^inputs\.vars is larger than {MAX_BYTES} bytes$"),
        ({"a": [[0] * 2000] * 100}, rf"^inputs\.vars is larger than {MAX_BYTES} bytes$"),
    ],
)
def test_what_is_not_plain_is_invalid_step_naming_the_path_only(value: object, message: str) -> None:
    with pytest.raises(InvalidStep, match=message) as info:
        plain(value, "inputs.vars")
    assert "s3cr3t" not in info.value.message


def test_nesting_is_bounded() -> None:
    value: object = "leaf"
    for _ in range(MAX_DEPTH):
        value = [value]
    assert plain(value) is not None
    with pytest.raises(InvalidStep, match=f"nests deeper than {MAX_DEPTH} levels"):
        plain([value])


def test_a_list_that_contains_itself_is_refused() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(InvalidStep, match="nests deeper"):
        plain(loop)


def test_long_paths_are_cut() -> None:
    with pytest.raises(InvalidStep) as info:
        plain({"k" * 500: math.nan}, "inputs.vars")
    assert len(info.value.message) < 200
