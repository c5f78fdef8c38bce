"""Nothing outside the error tree, no transient finalize failure and no oversized run may leave a
claimed step without a recorded outcome (issue 10, items 1-3 and 9), over the in-memory fakes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from structlog.testing import capture_logs

from tests.builders import step_data
from tests.fakes import FakeLlm, InMemoryArtifactStore, InMemoryRunStore, reply
from tests.world import World
from worker_llm_client.config import Settings
from worker_llm_client.core.document_size import MAX_STEPS_PER_RUN
from worker_llm_client.errors import RunStoreUnavailable, RunTooLarge
from worker_llm_client.models import Written
from worker_llm_client.observability import configure_logging

SECRET = "model-text-never-logged"


class _Strict(BaseModel):
    count: int


def _pydantic_error() -> Exception:
    try:
        _Strict(count=[SECRET])  # type: ignore[arg-type]
    except Exception as exc:
        return exc
    raise AssertionError("pydantic accepted a list as an int")


def _no_secret_in(logs: list[dict[str, Any]]) -> None:
    """``capture_logs`` keeps ``exc_info`` raw (its rendering is tested on stdout below)."""
    assert SECRET not in json.dumps([{k: v for k, v in e.items() if k != "exc_info"} for e in logs], default=str)


@pytest.mark.parametrize(
    "raised",
    [RecursionError("maximum recursion depth"), ValueError(SECRET), KeyError(SECRET), _pydantic_error()],
    ids=["recursion", "value", "key", "pydantic"],
)
def test_an_exception_outside_the_tree_in_the_model_call_is_recorded_as_internal(raised: Exception) -> None:
    world = World(FakeLlm(lambda r: raised))
    with capture_logs() as logs:
        [result] = world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert (result.status, result.finalized) == ("FAILED", True)
    assert step["status"] == "FAILED" and step["error"]["code"] == "INTERNAL" and step["error"]["retryable"] is False
    assert type(raised).__name__ in step["error"]["message"] and SECRET not in step["error"]["message"]
    failed = next(e for e in logs if e["event"] == "step.failed")
    assert failed["llmCalls"] == 1  # the attempt's cost is kept
    assert any(e["event"] == "step.internal_error" for e in logs)
    _no_secret_in(logs)


def test_a_crash_after_the_model_call_never_calls_the_model_again() -> None:
    class Broken(InMemoryArtifactStore):
        def put(self, object_name: str, data: bytes, metadata: Any) -> Any:
            raise UnicodeEncodeError("utf-8", SECRET, 0, 1, "surrogates not allowed")

    world = World()
    world.artifacts = world.executor.producer.artifacts = Broken()
    world.executor.handle(world.run({"s1": step_data(maxAttempts=5)}))
    world.clock.advance(3600)
    world.executor.sweep(limit=10)
    assert world.step("s1")["error"]["code"] == "INTERNAL" and len(world.llm.requests) == 1


def test_the_log_line_of_an_internal_error_carries_a_traceback_without_any_exception_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging()
    world = World(FakeLlm(lambda r: _pydantic_error()))
    world.executor.handle(world.run({"s1": step_data()}))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    [internal] = [line for line in lines if line["message"] == "step.internal_error"]
    assert "Traceback" in internal["exception"] and "ValidationError (message withheld)" in internal["exception"]
    assert SECRET not in json.dumps(lines)


def test_a_transient_finalize_failure_is_retried_in_the_invocation() -> None:
    world = World()
    world.runs.faults = [RunStoreUnavailable("writing run 'r1' failed: ServiceUnavailable")] * 3
    with capture_logs() as logs:
        [result] = world.executor.handle(world.run({"s1": step_data()}))
    assert result.finalized and world.step("s1")["status"] == "SUCCEEDED"
    assert [e["tries"] for e in logs if e["event"] == "step.finalize_retry"] == [1, 2, 3]
    assert len(world.slept) == 3


def test_a_finalize_that_keeps_failing_leaves_the_step_to_its_lease_and_the_salvage_reuses_the_report() -> None:
    world = World(work_seconds=10.0, finalize_seconds=5.0)
    world.runs.faults = [RunStoreUnavailable("writing run 'r1' failed: ServiceUnavailable")] * 100
    with capture_logs() as logs:
        [result] = world.executor.handle(world.run({"s1": step_data(maxAttempts=1)}))
    assert not result.finalized and world.step("s1")["status"] == "RUNNING"
    assert any(e["event"] == "step.finalize_failed" and e["reason"] == "window_closed" for e in logs)
    world.runs.faults = []
    world.clock.advance(601)  # the lease of the last attempt expires: one salvage claim, no model call
    assert world.executor.sweep(limit=10).steps == 1
    step = world.step("s1")
    assert step["status"] == "SUCCEEDED" and step["outputs"]["cached"] is True and step["attempt"] == 1
    assert step["claim"]["salvage"] is True and len(world.llm.requests) == 1


def test_a_salvage_with_no_report_fails_lease_expired_without_calling_the_model() -> None:
    world = World()
    world.executor.claim(world.run({"s1": step_data(maxAttempts=1)}))  # the worker dies before the call
    world.clock.advance(601)
    world.executor.sweep(limit=10)
    step = world.step("s1")
    assert step["status"] == "FAILED" and step["error"]["code"] == "LEASE_EXPIRED" and step["error"]["retryable"]
    assert world.llm.requests == [] and step["attempt"] == 1


def test_a_result_the_run_document_cannot_hold_is_recorded_as_run_too_large() -> None:
    world = World(runs=InMemoryRunStore(max_document_bytes=2_500))
    big_id = "r" * 2_000
    world.llm.respond = lambda r: reply(response_id=big_id)
    world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert step["status"] == "FAILED" and step["error"]["code"] == "RUN_TOO_LARGE" and "outputs" not in step


def test_an_unforeseen_finalize_error_is_recorded_as_internal() -> None:
    world = World()
    world.runs.faults = [TypeError(SECRET)]
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert step["status"] == "FAILED" and step["error"]["code"] == "INTERNAL"
    assert "TypeError" in step["error"]["message"]
    _no_secret_in(logs)


def test_a_run_over_the_step_limit_is_refused_up_front_without_a_model_call() -> None:
    world = World()
    steps = {f"s{i:04}": step_data() for i in range(MAX_STEPS_PER_RUN + 1)}
    world.executor.handle(world.run(steps))
    statuses = {world.step(s)["status"] for s in steps}
    codes = {world.step(s)["error"]["code"] for s in steps}
    assert statuses == {"FAILED"} and codes == {"RUN_TOO_LARGE"} and world.llm.requests == []
    assert "at most 500" in world.step("s0000")["error"]["message"]


def test_a_run_document_with_no_room_left_refuses_the_steps_it_cannot_hold() -> None:
    world = World()
    filler = "x" * 1_000_000  # the orchestrator's own data leaves less than the room a result needs
    world.runs.put("r1", {"status": "RUNNING", "notes": filler, "steps": {"s1": step_data()}})
    world.executor.handle(world.runs.get_run("r1"))  # type: ignore[arg-type]
    step = world.step("s1")
    assert step["error"]["code"] == "RUN_TOO_LARGE" and "no room left" in step["error"]["message"]
    assert world.llm.requests == []


def test_a_claim_that_landed_is_kept_for_every_step_still_ours() -> None:
    class LandsButSaysNo(InMemoryRunStore):
        """The commit was retried after landing, and another writer changed one step since."""

        def write_if_unchanged(self, run_id: str, update_time: Any, patch: Any) -> Written:
            if super().write_if_unchanged(run_id, update_time, patch) is not Written.LANDED:
                return Written.CONFLICT
            if self.docs[run_id]["steps"]["b"]["status"] == "RUNNING":
                self.docs[run_id]["steps"]["b"]["status"] = "CANCELLED"
                self._touch(run_id)
                return Written.UNCERTAIN
            return Written.LANDED

    world = World(runs=LandsButSaysNo())
    results = world.executor.handle(world.run({"a": step_data(), "b": step_data()}))
    assert [(r.step_id, r.status) for r in results] == [("a", "SUCCEEDED")]
    assert world.step("a")["status"] == "SUCCEEDED" and world.step("b")["status"] == "CANCELLED"


class AlwaysConflicts(InMemoryRunStore):
    def write_if_unchanged(self, run_id: str, update_time: Any, patch: Any) -> Written:
        self.writes += 1
        self._touch(run_id)
        return Written.CONFLICT


def test_an_events_claim_that_conflicts_is_left_to_the_event_of_the_write_that_won() -> None:
    world = World(runs=AlwaysConflicts())
    snapshot = world.run({"a": step_data()})
    reads, writes = world.runs.reads, world.runs.writes
    with capture_logs() as logs:
        assert world.executor.handle(snapshot) == []
    assert (world.runs.reads - reads, world.runs.writes - writes, world.slept) == (0, 1, [])
    assert [(e["event"], e["reason"]) for e in logs] == [("step.claim_conflict", "run_changed_since_snapshot")]


def test_the_sweepers_claim_conflicts_read_again_and_back_off() -> None:
    world = World(runs=AlwaysConflicts())
    snapshot = world.run({"a": step_data()})
    reads = world.runs.reads
    with capture_logs() as logs:
        assert world.executor.claim(snapshot) == (snapshot, [])
    assert len(world.slept) == 4 and all(0 < wait <= 1.0 for wait in world.slept)
    assert world.runs.reads - reads == 4  # not after the last round: nothing would use that read
    assert logs[-1]["reason"] == "gave_up_after_rounds"


def test_a_settings_repr_never_shows_the_api_key() -> None:
    settings = Settings.from_env({"GEMINI_API_KEY": SECRET, "GOOGLE_CLOUD_PROJECT": "p"})
    assert SECRET not in repr(settings) and settings.gemini_api_key == SECRET


def test_a_lease_expired_error_is_raised_as_its_own_type() -> None:
    from worker_llm_client.core.transitions import lease_expired_error
    from worker_llm_client.errors import LeaseExpired

    error = lease_expired_error(2)
    assert isinstance(error, LeaseExpired) and error.code == "LEASE_EXPIRED" and error.retryable


def test_run_too_large_is_permanent() -> None:
    assert RunTooLarge("x").retryable is False and RunTooLarge.code == "RUN_TOO_LARGE"


def test_the_finalize_window_is_what_the_policy_gives() -> None:
    world = World(work_seconds=1.0, finalize_seconds=0.5)
    world.runs.faults = [RunStoreUnavailable("down")] * 100
    world.executor.handle(world.run({"s1": step_data()}))
    assert sum(world.slept) < 1.5 + 1e-9  # never past the work window plus the finalize window
    assert timedelta(seconds=sum(world.slept)) < timedelta(seconds=2)


def test_a_claim_the_document_cannot_hold_is_not_tried_again() -> None:
    class Full(InMemoryRunStore):
        tries = 0

        def write_if_unchanged(self, run_id: str, update_time: Any, patch: Any) -> bool:
            self.tries += 1
            raise RunTooLarge("run 'r1' cannot hold this write: Firestore's document limits")

    world = World(runs=Full())
    assert world.executor.handle(world.run({"a": step_data()})) == []
    assert world.runs.tries == 1 and world.slept == [] and world.llm.requests == []  # type: ignore[attr-defined]
