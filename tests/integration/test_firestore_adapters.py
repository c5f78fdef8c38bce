"""The Firestore adapters against the real emulator: preconditions, transactions, quoting."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.builders import T0, later, step_data
from tests.stacks import ROOT
from worker_llm_client.adapters.firestore_catalog import FirestoreCatalog
from worker_llm_client.adapters.firestore_runs import FirestoreRunStore
from worker_llm_client.catalog.documents import PROFILES, PROMPTS
from worker_llm_client.catalog.push import push
from worker_llm_client.catalog.sources import load_prompts
from worker_llm_client.core.transitions import Delete, failed_patch, succeeded_patch
from worker_llm_client.errors import ProfileNotFound, PromptNotFound
from worker_llm_client.execution_models import Profile, Prompt
from worker_llm_client.models import RunSnapshot, Written

pytestmark = pytest.mark.integration


def _on_first_update(monkeypatch: pytest.MonkeyPatch, around: Callable[[Any, Callable[[], Any]], Any]) -> None:
    """The next ``DocumentReference.update`` goes through ``around(ref, write)``, ``write`` doing the
    real update; the ones after it are real."""
    from google.cloud.firestore_v1.document import DocumentReference

    real = DocumentReference.update

    def first(self: Any, *args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(DocumentReference, "update", real)
        return around(self, lambda: real(self, *args, **kwargs))

    monkeypatch.setattr(DocumentReference, "update", first)


def _write(db: Any, run_id: str, steps: dict[str, Any], status: str = "RUNNING") -> Any:
    return db.collection("flow_runs").document(run_id).set({"status": status, "steps": steps}).update_time


def _step(db: Any, run_id: str, step_id: str) -> dict[str, Any]:
    return db.collection("flow_runs").document(run_id).get().to_dict()["steps"][step_id]  # type: ignore[no-any-return]


def test_snapshot_round_trips_timestamps_and_dotted_step_ids(db: Any, run_id: str) -> None:
    update_time = _write(db, run_id, {"weekly-report.v2": step_data(retryAt=T0)})
    snapshot = FirestoreRunStore(db).get_run(run_id)
    assert snapshot is not None and snapshot.update_time == update_time
    assert snapshot.steps["weekly-report.v2"].data["retryAt"] == T0


def test_claim_precondition_lets_exactly_one_of_two_claimers_win(db: Any, run_id: str) -> None:
    store = FirestoreRunStore(db)
    update_time = _write(db, run_id, {"weekly-report.v2": step_data()})
    patches = [
        {("steps", "weekly-report.v2", "status"): "RUNNING", ("steps", "weekly-report.v2", "claim"): {"token": t}}
        for t in ("a", "b")
    ]
    results: list[Written] = []
    threads = [
        threading.Thread(target=lambda p=p: results.append(store.write_if_unchanged(run_id, update_time, p)))
        for p in patches
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [Written.CONFLICT, Written.LANDED]
    step = _step(db, run_id, "weekly-report.v2")
    assert step["status"] == "RUNNING" and step["claim"]["token"] in {"a", "b"}
    assert "weekly-report" not in str(
        db.collection("flow_runs").document(run_id).get().to_dict().keys() - {"status", "steps"}
    )


def test_claim_with_a_stale_update_time_is_refused(db: Any, run_id: str) -> None:
    stale = _write(db, run_id, {"s1": step_data()})
    _write(db, run_id, {"s1": step_data(), "s2": step_data()})
    assert FirestoreRunStore(db).write_if_unchanged(run_id, stale, {("steps", "s1", "status"): "RUNNING"}) == "conflict"
    assert _step(db, run_id, "s1")["status"] == "READY"


def test_a_claim_whose_commit_was_retried_after_landing_is_uncertain_not_a_conflict(
    db: Any, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's own retry of a commit that landed fails its precondition: only a read can
    tell that write from another writer's, so the store says it cannot tell."""
    from google.api_core import exceptions as gexc
    from google.cloud.firestore_v1.services.firestore import FirestoreClient

    real_commit = FirestoreClient.commit
    tries: list[int] = []

    def lands_then_unavailable(self: Any, request: Any = None, *, retry: Any, **kwargs: Any) -> Any:
        def attempt() -> Any:
            tries.append(1)
            answer = real_commit(self, request=request, retry=None, **kwargs)
            if len(tries) == 1:
                raise gexc.ServiceUnavailable("the answer to a commit that landed was lost")
            return answer

        return retry(attempt)()

    update_time = _write(db, run_id, {"s1": step_data()})
    monkeypatch.setattr(FirestoreClient, "commit", lands_then_unavailable)
    written = FirestoreRunStore(db).write_if_unchanged(run_id, update_time, {("steps", "s1", "status"): "RUNNING"})
    assert written is Written.UNCERTAIN and len(tries) == 2 and _step(db, run_id, "s1")["status"] == "RUNNING"


def test_claim_deletes_fields_marked_delete(db: Any, run_id: str) -> None:
    update_time = _write(db, run_id, {"s1": step_data(status="RETRY_WAIT", retryAt=later(-1))})
    written = FirestoreRunStore(db).write_if_unchanged(run_id, update_time, {("steps", "s1", "retryAt"): Delete.FIELD})
    assert written is Written.LANDED
    assert "retryAt" not in _step(db, run_id, "s1")


def test_finalize_is_guarded_by_the_claim_token(db: Any, run_id: str) -> None:
    store = FirestoreRunStore(db)
    _write(db, run_id, {"s.1": step_data(status="RUNNING", claim={"token": "new-owner"})})
    assert store.finalize(run_id, "s.1", "old-owner", {("steps", "s.1", "status"): "SUCCEEDED"}) is False
    assert _step(db, run_id, "s.1")["status"] == "RUNNING"
    assert store.finalize(run_id, "s.1", "new-owner", {("steps", "s.1", "status"): "SUCCEEDED"}) is True
    assert _step(db, run_id, "s.1")["status"] == "SUCCEEDED"


def test_finalize_leaves_a_cancelled_step_alone(db: Any, run_id: str) -> None:
    _write(db, run_id, {"s1": step_data(status="CANCELLED", claim={"token": "t"})})
    assert FirestoreRunStore(db).finalize(run_id, "s1", "t", {("steps", "s1", "status"): "SUCCEEDED"}) is False
    assert _step(db, run_id, "s1")["status"] == "CANCELLED"


def test_catalog_reads_current_and_pinned_versions(db: Any) -> None:
    body = load_prompts(ROOT / "prompts", ROOT / "schemas")["weekly_report"]
    first = push(db, PROMPTS, "it-pinned", body)
    again = push(db, PROMPTS, "it-pinned", body)
    second = push(db, PROMPTS, "it-pinned", {**body, "template": "changed {{ team }}", "sha256": "0" * 64})
    assert (first.changed, again.changed, again.version, second.version) == (
        True,
        False,
        first.version,
        first.version + 1,
    )
    store = FirestoreCatalog(db)
    assert store.get_prompt("it-pinned", None).template == "changed {{ team }}"
    assert store.get_prompt("it-pinned", first.version).template == body["template"]
    with pytest.raises(PromptNotFound, match="version 99 does not exist"):
        store.get_prompt("it-pinned", 99)
    with pytest.raises(PromptNotFound, match="does not exist"):
        store.get_prompt("nope", None)


def test_catalog_profiles(db: Any) -> None:
    store = FirestoreCatalog(db)
    profile = store.get_profile("flash-json")
    assert (profile.provider, profile.model, profile.generation.temperature, profile.timeout_seconds) == (
        "gemini",
        "gemini-2.5-flash",
        0.2,
        60,
    )
    db.collection(PROFILES).document("it-broken").set({"provider": "cohere", "model": "x", "version": 1})
    with pytest.raises(ProfileNotFound, match="malformed: provider"):
        store.get_profile("it-broken")
    with pytest.raises(ProfileNotFound, match="does not exist"):
        store.get_profile("nope")


def test_prompt_and_profile_are_read_in_one_request_and_problems_returned_not_raised(db: Any) -> None:
    from benchmarks.measure import counting_rpcs

    store = FirestoreCatalog(db)
    push(db, PROMPTS, "it-both", load_prompts(ROOT / "prompts", ROOT / "schemas")["weekly_report"])
    db.collection(PROFILES).document("it-both-broken").set({"provider": "cohere", "model": "x", "version": 1})
    with counting_rpcs() as rpcs:
        prompt, profile = store.get_prompt_and_profile("it-both", None, "flash-json")
    assert rpcs.calls == {"BatchGetDocuments": 1}
    assert isinstance(prompt, Prompt) and prompt.prompt_id == "it-both"
    assert isinstance(profile, Profile) and profile.model == "gemini-2.5-flash"
    pinned, _ = store.get_prompt_and_profile("it-both", prompt.version, "flash-json")
    assert isinstance(pinned, Prompt) and pinned.version == prompt.version
    missing, broken = store.get_prompt_and_profile("nope", 7, "it-both-broken")
    assert isinstance(missing, PromptNotFound) and "version 7 does not exist" in missing.message
    assert isinstance(broken, ProfileNotFound) and "malformed: provider" in broken.message


def test_steps_of_one_run_finishing_together_do_not_contend(db: Any, firestore_emulator: Any, run_id: str) -> None:
    store = FirestoreRunStore(db)
    step_ids = [f"s{i}" for i in range(4)]
    _write(db, run_id, {s: step_data(status="RUNNING", claim={"token": s}) for s in step_ids})
    timeouts_before = Path(firestore_emulator.log_path).read_text().count("lock timeout")
    start = threading.Barrier(len(step_ids))

    def finish(step_id: str) -> bool:
        start.wait()
        return store.finalize(run_id, step_id, step_id, {("steps", step_id, "status"): "SUCCEEDED"})

    with ThreadPoolExecutor(len(step_ids)) as pool:
        assert list(pool.map(finish, step_ids)) == [True] * len(step_ids)
    assert {s: _step(db, run_id, s)["status"] for s in step_ids} == dict.fromkeys(step_ids, "SUCCEEDED")
    assert Path(firestore_emulator.log_path).read_text().count("lock timeout") == timeouts_before


def test_finalizes_queued_behind_one_in_flight_are_committed_together(db: Any, run_id: str) -> None:
    from benchmarks.measure import counting_rpcs

    store = FirestoreRunStore(db)
    step_ids = [f"s{i}" for i in range(8)]
    _write(db, run_id, {s: step_data(status="RUNNING", claim={"token": s}) for s in step_ids})
    tokens = {s: ("stolen" if s == "s3" else s) for s in step_ids}  # s3 was taken over meanwhile
    start = threading.Barrier(len(step_ids))

    def finish(step_id: str) -> bool:
        start.wait()
        return store.finalize(run_id, step_id, tokens[step_id], {("steps", step_id, "status"): "SUCCEEDED"})

    with counting_rpcs() as rpcs, ThreadPoolExecutor(len(step_ids)) as pool:
        results = dict(zip(step_ids, pool.map(finish, step_ids), strict=True))
    assert results == {s: s != "s3" for s in step_ids}
    statuses = {s: _step(db, run_id, s)["status"] for s in step_ids}
    assert statuses == {s: "RUNNING" if s == "s3" else "SUCCEEDED" for s in step_ids}
    assert rpcs.calls["Commit"] < len(step_ids)  # the steps that queued up shared a write
    assert "BeginTransaction" not in rpcs.calls  # a read and a precondition write: no transaction


def test_two_instances_finalizing_steps_of_one_run_at_once_both_land(db: Any, run_id: str) -> None:
    stores = [FirestoreRunStore(db), FirestoreRunStore(db)]  # two instances: no shared lock or queue
    step_ids = [f"s{i}" for i in range(8)]
    _write(db, run_id, {s: step_data(status="RUNNING", claim={"token": s}) for s in step_ids})
    start = threading.Barrier(len(step_ids))

    def finish(n: int) -> bool:
        start.wait()
        step_id = step_ids[n]
        return stores[n % 2].finalize(run_id, step_id, step_id, {("steps", step_id, "status"): "SUCCEEDED"})

    with ThreadPoolExecutor(len(step_ids)) as pool:
        assert list(pool.map(finish, range(len(step_ids)))) == [True] * len(step_ids)
    assert {s: _step(db, run_id, s)["status"] for s in step_ids} == dict.fromkeys(step_ids, "SUCCEEDED")


def test_a_finalize_whose_write_landed_but_was_retried_still_counts(
    db: Any, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core import exceptions as gexc
    from google.cloud.firestore_v1.document import DocumentReference

    real_update = DocumentReference.update
    calls: list[int] = []

    def update_then_lose_the_answer(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        result = real_update(self, *args, **kwargs)
        if len(calls) == 1:  # the commit landed; the client retried it and its precondition failed
            raise gexc.FailedPrecondition("the stored version does not match the required base version")
        return result

    _write(db, run_id, {"s1": step_data(status="RUNNING", claim={"token": "mine"})})
    monkeypatch.setattr(DocumentReference, "update", update_then_lose_the_answer)
    patch = succeeded_patch("s1", {"gcs_uri": "gs://b/o"}, datetime.now(UTC))
    assert FirestoreRunStore(db).finalize(run_id, "s1", "mine", patch) is True
    assert len(calls) == 1 and _step(db, run_id, "s1")["status"] == "SUCCEEDED"


def test_a_step_failed_by_another_writer_under_our_token_is_not_taken_for_our_write(
    db: Any, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(db, run_id, {"s1": step_data(status="RUNNING", attempt=3, claim={"token": "mine"})})
    other = later(0)  # e.g. another instance failing the step as LEASE_EXPIRED: claim untouched

    def another_writer_first(ref: Any, write: Callable[[], Any]) -> Any:
        ref.update({"steps.s1.status": "FAILED", "steps.s1.finishedAt": other})  # our precondition now fails
        return write()

    _on_first_update(monkeypatch, another_writer_first)
    patch = failed_patch("s1", {"code": "LLM_BAD_REQUEST", "message": "m", "retryable": False}, datetime.now(UTC))
    assert FirestoreRunStore(db).finalize(run_id, "s1", "mine", patch) is False
    assert _step(db, run_id, "s1")["finishedAt"] == other and "error" not in _step(db, run_id, "s1")


class _Follow:
    """A follow-on that claims ``s2`` whenever it is asked, recording what it was shown."""

    def __init__(self) -> None:
        self.planned: list[RunSnapshot] = []
        self.landed_on: list[RunSnapshot] = []

    def plan(self, run: RunSnapshot) -> dict[Any, Any]:
        self.planned.append(run)
        return {("steps", "s2", "status"): "RUNNING", ("steps", "s2", "claim"): {"token": f"next-{len(self.planned)}"}}

    def landed(self, run: RunSnapshot) -> None:
        self.landed_on.append(run)


def _two_steps(db: Any, run_id: str) -> dict[Any, Any]:
    _write(db, run_id, {"s1": step_data(status="RUNNING", claim={"token": "mine"}), "s2": step_data()})
    return succeeded_patch("s1", {"gcs_uri": "gs://b/o"}, datetime.now(UTC))


def test_a_finalize_writes_what_its_follow_on_plans_in_the_same_write(db: Any, run_id: str) -> None:
    follow, patch = _Follow(), _two_steps(db, run_id)
    ref = db.collection("flow_runs").document(run_id)
    before = ref.get().update_time
    assert FirestoreRunStore(db).finalize(run_id, "s1", "mine", patch, follow=follow) is True
    [planned], [landed] = follow.planned, follow.landed_on
    assert planned.steps["s1"].status == "SUCCEEDED" and planned.steps["s2"].status == "READY"  # planned on the after
    assert landed.steps["s2"].held_by("next-1") and _step(db, run_id, "s2")["claim"] == {"token": "next-1"}
    assert _step(db, run_id, "s1")["status"] == "SUCCEEDED" and ref.get().update_time > before


def test_a_follow_on_is_planned_again_after_a_conflict_and_only_the_plan_that_landed_is_reported(
    db: Any, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    follow, patch = _Follow(), _two_steps(db, run_id)

    def another_writer_first(ref: Any, write: Callable[[], Any]) -> Any:
        ref.update({"note": "the orchestrator wrote"})  # our precondition now fails
        return write()

    _on_first_update(monkeypatch, another_writer_first)
    assert FirestoreRunStore(db).finalize(run_id, "s1", "mine", patch, follow=follow) is True
    assert len(follow.planned) == 2 and len(follow.landed_on) == 1
    assert follow.landed_on[0].steps["s2"].held_by("next-2") and _step(db, run_id, "s2")["claim"]["token"] == "next-2"


def test_a_follow_on_landed_with_a_retried_write_that_had_landed(
    db: Any, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from google.api_core import exceptions as gexc

    follow, patch = _Follow(), _two_steps(db, run_id)

    def update_then_lose_the_answer(ref: Any, write: Callable[[], Any]) -> Any:
        write()
        raise gexc.FailedPrecondition("the stored version does not match the required base version")

    _on_first_update(monkeypatch, update_then_lose_the_answer)
    assert FirestoreRunStore(db).finalize(run_id, "s1", "mine", patch, follow=follow) is True
    assert len(follow.planned) == 1 and [r.steps["s2"].claim_token for r in follow.landed_on] == ["next-1"]


def test_the_follow_on_of_a_step_no_longer_held_is_never_asked(db: Any, run_id: str) -> None:
    follow, patch = _Follow(), _two_steps(db, run_id)
    assert FirestoreRunStore(db).finalize(run_id, "s1", "someone-else", patch, follow=follow) is False
    assert follow.planned == [] and follow.landed_on == [] and _step(db, run_id, "s2")["status"] == "READY"


class _CountingStore(FirestoreRunStore):
    reads = 0

    def get_run(self, run_id: str) -> RunSnapshot | None:
        self.reads += 1
        return super().get_run(run_id)


def _done(step_id: str) -> dict[Any, Any]:
    return succeeded_patch(step_id, {"gcs_uri": f"gs://b/{step_id}"}, datetime.now(UTC))


def test_the_next_finalize_of_a_run_writes_on_the_version_our_last_one_left_without_reading(
    db: Any, run_id: str
) -> None:
    _write(db, run_id, {s: step_data(status="RUNNING", claim={"token": s}) for s in ("s1", "s2", "s3")})
    store = _CountingStore(db)
    assert store.finalize(run_id, "s1", "s1", _done("s1")) and store.reads == 1
    assert store.finalize(run_id, "s2", "s2", _done("s2")) and store.reads == 1  # nobody wrote since: no read
    db.collection("flow_runs").document(run_id).update({"note": "the orchestrator wrote"})
    assert store.finalize(run_id, "s3", "s3", _done("s3")) and store.reads == 2  # the kept version conflicted
    assert {_step(db, run_id, s)["status"] for s in ("s1", "s2", "s3")} == {"SUCCEEDED"}
    assert "wakeAt" not in db.collection("flow_runs").document(run_id).get().to_dict().get("executor", {})


def test_a_claim_this_instance_writes_drops_the_version_it_kept(db: Any, run_id: str) -> None:
    _write(db, run_id, {"s1": step_data(status="RUNNING", claim={"token": "s1"}), "s2": step_data()})
    store = _CountingStore(db)
    assert store.finalize(run_id, "s1", "s1", _done("s1")) and store.reads == 1
    snapshot = store.get_run(run_id)
    assert snapshot is not None and snapshot.update_time is not None
    claim = {("steps", "s2", "status"): "RUNNING", ("steps", "s2", "claim"): {"token": "s2"}}
    assert store.write_if_unchanged(run_id, snapshot.update_time, claim) is Written.LANDED
    reads = store.reads
    assert store.finalize(run_id, "s2", "s2", _done("s2")) and store.reads == reads + 1


def test_the_backlog_is_counted_on_the_wake_index(firestore_emulator: Any) -> None:
    """``overdue``: a count aggregation and a one-document read on ``executor.wakeAt`` (a project
    of its own, so other tests' runs do not count)."""
    import uuid

    from google.cloud import firestore

    client = firestore.Client(project=f"it-backlog-{uuid.uuid4().hex[:8]}")
    try:
        store = FirestoreRunStore(client)
        assert store.overdue(T0) == (0, None)
        for name, offset in (("old", -100), ("recent", -10), ("future", 100)):
            client.collection("flow_runs").document(name).set({"steps": {}, "executor": {"wakeAt": later(offset)}})
        client.collection("flow_runs").document("idle").set({"steps": {}})
        assert store.overdue(T0) == (2, later(-100))
    finally:
        client.close()
