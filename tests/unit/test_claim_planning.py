"""Refusing what cannot fit (issue 10, item 3): permanent only when no other result is on its way."""

from __future__ import annotations

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from tests.builders import T0, later, make_run, step_data
from worker_llm_client.core.claim_planning import plan_claims
from worker_llm_client.core.document_size import MAX_DOCUMENT_BYTES, value_size
from worker_llm_client.execution_models import Claim
from worker_llm_client.models import run_from_document

FULL = "x" * (MAX_DOCUMENT_BYTES - 40_000)  # under the limit, but past the headroom: no room for a result
LEASED = {"status": "RUNNING", "attempt": 1, "claim": {"token": "t", "leaseExpiresAt": later(600)}}


def _claim() -> Claim:
    return Claim("tok", "w", T0, later(600))


def _full_run(steps: dict[str, dict[str, object]]) -> object:
    return run_from_document("r1", {"status": "RUNNING", "pad": FULL, "steps": steps}, T0)


def test_with_no_room_and_nothing_in_flight_a_runnable_step_is_refused() -> None:
    plan = plan_claims(_full_run({"a": step_data()}), T0, 8, _claim)  # type: ignore[arg-type]
    assert plan.claimed == [] and [s.step_id for s, _ in plan.refused] == ["a"]


def test_while_a_result_is_on_its_way_a_step_without_room_waits_ready() -> None:
    plan = plan_claims(_full_run({"a": step_data(), "b": step_data(), "running": step_data(**LEASED)}), T0, 8, _claim)  # type: ignore[arg-type]
    assert plan.claimed == [] and plan.refused == [] and plan.empty


def test_steps_beyond_the_limit_are_neither_claimed_nor_refused() -> None:
    run = make_run({f"s{i}": step_data() for i in range(5)})
    plan = plan_claims(run, T0, 2, _claim)
    assert [c.step.step_id for c in plan.claimed] == ["s0", "s1"] and plan.refused == []


class _Text:
    """A value of a kind the SDK decodes that this module does not know, with the given text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("é", 3),  # UTF-8 bytes + 1
        (True, 1),
        (None, 1),
        (2**62, 8),
        (0.5, 8),
        (T0, 8),
        (b"\x00\xff\x00", 3),  # bytes: their length
        (bytearray(b"ab"), 2),
        ({"ab": [1, b"x"]}, 3 + 8 + 1),  # a map: its keys and values; an array: its elements
        (_Text("x"), 16),  # anything else: its text, at least a geo point's 16
        (_Text("y" * 100), 101),
    ],
)
def test_values_are_sized_by_firestores_formula(value: object, size: int) -> None:
    assert value_size(value) == size


def test_a_geo_point_from_the_sdk_is_sized_no_smaller_than_firestore_sizes_it() -> None:
    assert value_size({"where": firestore.GeoPoint(48.85, 2.35)}) >= len("where") + 1 + 16


def test_a_reference_from_the_sdk_weighs_its_documents_name_not_its_repr() -> None:
    """The sweeper reads runs through the SDK, which decodes a reference in vars to a
    DocumentReference: Firestore sizes it by the referenced document's name (each id + 1, + 16),
    up to ~3 KB with long ids, where its repr is ~80 characters whatever it points to."""
    client = firestore.Client(project="p", credentials=AnonymousCredentials())
    long_id = "d" * 1500
    reference = client.collection("c").document(long_id)
    assert value_size(reference) == (1 + 1) + (1500 + 1) + 16
    assert value_size({"ref": reference}) == 4 + 1519 and len(repr(reference)) < 100  # what it was sized by


def test_a_measured_size_bound_that_leaves_room_is_trusted() -> None:
    """The bound stands for a document it was measured on: the document here is never walked."""
    bounded = run_from_document(
        "r1", {"status": "RUNNING", "pad": FULL, "steps": {"a": step_data()}}, T0, size_bound=10
    )
    assert [c.step.step_id for c in plan_claims(bounded, T0, 8, _claim).claimed] == ["a"]


def test_a_size_bound_that_leaves_too_little_room_is_checked_against_the_exact_size() -> None:
    too_big = run_from_document("r1", {"status": "RUNNING", "steps": {"a": step_data()}}, T0, size_bound=2**30)
    assert [c.step.step_id for c in plan_claims(too_big, T0, 8, _claim).claimed] == ["a"]
    full = run_from_document(
        "r1", {"status": "RUNNING", "pad": FULL, "steps": {"a": step_data()}}, T0, size_bound=2**30
    )
    assert [s.step_id for s, _ in plan_claims(full, T0, 8, _claim).refused] == ["a"]


def test_without_measuring_a_size_bound_that_does_not_prove_room_plans_nothing() -> None:
    """``measure=False`` (the next claim in a finalize): the document is never walked, so a bound
    that is missing or leaves too little room plans nothing, not even a refusal; one that proves
    room plans as usual."""
    document = {"status": "RUNNING", "steps": {"a": step_data()}}
    for size_bound in (None, 2**30):
        unproven = run_from_document("r1", document, T0, size_bound=size_bound)
        assert plan_claims(unproven, T0, 1, _claim, measure=False).empty
    proven = run_from_document("r1", document, T0, size_bound=10)
    assert [c.step.step_id for c in plan_claims(proven, T0, 1, _claim, measure=False).claimed] == ["a"]
