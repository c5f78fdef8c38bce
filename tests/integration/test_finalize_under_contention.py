"""Finalizes that keep losing precondition races on the real emulator (issue 10, item 2): before,
a batch gave up after 10 conflicts in a row and its steps stayed RUNNING with their reports written."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tests.builders import step_data
from worker_llm_client.adapters import firestore_runs
from worker_llm_client.models import run_from_document

pytestmark = pytest.mark.integration
VARS = {"team": "core", "week": "2026-W47", "notes": ["n"]}


def test_every_step_is_finalized_while_another_writer_keeps_changing_the_run(
    executor: Any, db: Any, stub: Any, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(firestore_runs, "FINALIZE_ROUNDS", 2)  # the store gives up early; the use case goes on
    ref = db.collection("flow_runs").document(run_id)
    steps = {f"s{i}": step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS) for i in range(6)}
    written = ref.set({"status": "RUNNING", "steps": steps, "orchestrator": {"tick": 0}})
    stop = threading.Event()

    def orchestrator() -> None:  # once the steps are claimed, touches the run as fast as it can
        stub.wait_for_calls(1)
        tick = 0
        while not stop.wait(0.03) and tick < 150:
            tick += 1
            ref.update({"orchestrator.tick": tick})

    stub.latency = 0.3
    racer = threading.Thread(target=orchestrator, daemon=True)
    racer.start()
    try:
        results = executor.handle(run_from_document(run_id, ref.get().to_dict(), written.update_time))
    finally:
        stop.set()
        racer.join(timeout=10)
    final = ref.get().to_dict()["steps"]
    assert all(r.finalized for r in results) and len(results) == 6
    assert {s["status"] for s in final.values()} == {"SUCCEEDED"} and stub.calls() == 6


def test_a_finalize_whose_write_landed_before_it_failed_counts_as_written(
    executor: Any, db: Any, stub: Any, run_id: str
) -> None:
    """Firestore may answer DEADLINE_EXCEEDED for a commit that landed: the retry must see its own
    write, not take the step for someone else's and log a discarded finalize."""
    from worker_llm_client.adapters.firestore_runs import FirestoreRunStore
    from worker_llm_client.errors import RunStoreUnavailable

    class LandsThenFails(FirestoreRunStore):
        failed = False

        def _write(self, run_id: str, update_time: Any, patch: Any) -> Any:  # every write of the store
            written = super()._write(run_id, update_time, patch)
            finishing = any(path[-1] == "status" and value == "SUCCEEDED" for path, value in patch.items())
            if written[0] == "landed" and finishing and not self.failed:
                self.failed = True
                raise RunStoreUnavailable("writing run failed: DeadlineExceeded")
            return written

    executor.runs = LandsThenFails(db)
    ref = db.collection("flow_runs").document(run_id)
    written = ref.set(
        {"status": "RUNNING", "steps": {"s1": step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS)}}
    )
    [result] = executor.handle(run_from_document(run_id, ref.get().to_dict(), written.update_time))
    assert result.finalized and executor.runs.failed
    assert ref.get().to_dict()["steps"]["s1"]["status"] == "SUCCEEDED" and stub.calls() == 1
