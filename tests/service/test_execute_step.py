"""The use case with in-memory fakes: claim -> resolve -> call -> validate -> write -> finalize."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from tests.builders import T0, make_profile, make_prompt, step_data
from tests.fakes import FakeCatalog, FakeLlm, InMemoryRunStore, reply
from tests.world import World
from worker_llm_client.core.artifact_naming import artifact_object_name, request_fingerprint
from worker_llm_client.core.canonical import sha256_hex
from worker_llm_client.errors import LlmRateLimited, LlmUnavailable
from worker_llm_client.execution_models import LlmRequest, LlmResult, Turn
from worker_llm_client.models import Written
from worker_llm_client.next_claim import MIN_NEXT_SECONDS

SECRET_VAR = "var-value-never-logged"


def test_ready_step_succeeds_with_the_contract_outputs() -> None:
    world = World()
    snapshot = world.run({"s1": step_data(vars={"team": "core"})})
    reports = world.executor.handle(snapshot)
    step = world.step("s1")
    assert [(r.step_id, r.status, r.finalized) for r in reports] == [("s1", "SUCCEEDED", True)]
    assert step["status"] == "SUCCEEDED"
    assert step["attempt"] == 1
    assert step["claim"]["token"] == "token-0"
    assert step["startedAt"] == T0
    assert step["finishedAt"] == T0
    assert step["claim"]["leaseExpiresAt"] > T0
    out = step["outputs"]
    [(name, (data, metadata))] = world.artifacts.objects.items()
    assert out["gcs_uri"] == f"gs://artifacts/{name}"
    assert name.startswith("flow_runs/r1/s1/")
    assert name.endswith(".json")
    assert json.loads(data) == {"title": "t", "severity": "low", "findings": ["a"]}
    assert out["sizeBytes"] == len(data)
    assert out["sha256"] == metadata["sha256"]
    assert {
        k: out[k]
        for k in (
            "promptId",
            "promptVersion",
            "llmProfile",
            "profileVersion",
            "model",
            "modelVersion",
            "responseId",
            "finishReason",
            "llmCalls",
            "cached",
        )
    } == {
        "promptId": "weekly",
        "promptVersion": 1,
        "llmProfile": "fast",
        "profileVersion": 1,
        "model": "gemini-2.5-flash",
        "modelVersion": "gemini-2.5-flash-001",
        "responseId": "resp-1",
        "finishReason": "STOP",
        "llmCalls": 1,
        "cached": False,
    }
    assert out["promptSha256"] == make_prompt().sha256
    assert out["usage"] == {
        "promptTokens": 10,
        "outputTokens": 5,
        "thoughtsTokens": 2,
        "cachedTokens": 0,
        "totalTokens": 17,
    }
    assert isinstance(out["latencyMs"], int)
    assert {
        k: metadata[k]
        for k in ("runId", "stepId", "attempt", "promptId", "promptVersion", "llmProfile", "model", "modelVersion")
    } == {
        "runId": "r1",
        "stepId": "s1",
        "attempt": "1",
        "promptId": "weekly",
        "promptVersion": "1",
        "llmProfile": "fast",
        "model": "gemini-2.5-flash",
        "modelVersion": "gemini-2.5-flash-001",
    }
    [request] = world.llm.requests
    assert request.contents == (Turn("user", "Weekly report for core."),)
    assert request.system_instruction == "You write terse reports."
    assert request.response_schema["required"] == ["title", "severity", "findings"]


def test_independent_steps_run_concurrently_and_the_dependent_one_waits() -> None:
    both_inside = threading.Barrier(2, timeout=5)

    def respond(request: LlmRequest) -> LlmResult:
        both_inside.wait()  # deadlocks (BrokenBarrierError) unless a and b are in flight together
        return reply()

    world = World(FakeLlm(respond), work_seconds=30.0)  # too short a window to claim c in a finalize
    snapshot = world.run({"a": step_data(), "b": step_data(), "c": step_data(depends_on=["a", "b"])})
    reports = world.executor.handle(snapshot)
    assert sorted(r.step_id for r in reports) == ["a", "b"]
    assert world.step("c")["status"] == "READY"
    world.llm.respond = lambda request: reply()
    [report] = world.executor.handle(world.runs.get_run("r1"))  # the event our finalize caused
    assert report.step_id == "c"
    assert world.step("c")["status"] == "SUCCEEDED"


def test_the_finalize_that_meets_the_last_dependency_claims_the_dependent_in_the_same_write() -> None:
    calls: list[int] = []
    both_inside = threading.Barrier(2, timeout=5)

    def respond(request: LlmRequest) -> LlmResult:
        calls.append(1)
        if len(calls) <= 2:
            both_inside.wait()  # a and b in flight together; c only after both
        return reply()

    world = World(FakeLlm(respond))
    snapshot = world.run({"a": step_data(), "b": step_data(), "c": step_data(depends_on=["a", "b"])})
    writes = world.runs.writes
    reports = world.executor.handle(snapshot)
    assert sorted(r.step_id for r in reports) == ["a", "b", "c"] and {r.status for r in reports} == {"SUCCEEDED"}
    assert world.runs.writes - writes == 4  # one claim (a, b), two finalizes (the later one claims c), c's finalize
    c, last = world.step("c"), max(world.step("a")["finishedAt"], world.step("b")["finishedAt"])
    assert c["attempt"] == 1 and c["startedAt"] >= last and "wakeAt" not in world.runs.docs["r1"]["executor"]


def test_duplicate_and_stale_events_cause_no_second_model_call() -> None:
    world = World()
    snapshot = world.run({"s1": step_data()})
    world.executor.handle(snapshot)
    assert world.executor.handle(snapshot) == []  # same event again: precondition fails, re-read, nothing to do
    assert len(world.llm.requests) == 1
    assert world.step("s1")["attempt"] == 1


def test_two_claimers_one_wins() -> None:
    world = World()
    snapshot = world.run({"s1": step_data()})
    first = world.executor.claim(snapshot)[1]
    second = world.executor.claim(snapshot)[1]
    assert len(first) == 1
    assert second == []
    assert world.step("s1")["claim"]["token"] == first[0].claim.token


def test_claims_at_most_max_parallel_steps_and_leaves_the_rest_ready() -> None:
    world = World(max_parallel_steps=2, work_seconds=30.0)  # too short a window to claim more in a finalize
    world.executor.handle(world.run({f"s{i}": step_data() for i in range(3)}))
    assert [world.step(f"s{i}")["status"] for i in range(3)] == ["SUCCEEDED", "SUCCEEDED", "READY"]


def test_a_finished_steps_slot_goes_to_the_next_ready_step_never_more_than_max_parallel_at_once() -> None:
    inflight, most = [0], [0]
    lock = threading.Lock()

    def respond(request: LlmRequest) -> LlmResult:
        with lock:
            inflight[0] += 1
            most[0] = max(most[0], inflight[0])
        time.sleep(0.02)  # long enough for a third step to be seen if it ran at once
        with lock:
            inflight[0] -= 1
        return reply()

    world = World(FakeLlm(respond), max_parallel_steps=2)
    reports = world.executor.handle(world.run({f"s{i}": step_data() for i in range(7)}))
    assert sorted(r.step_id for r in reports) == [f"s{i}" for i in range(7)] and most[0] <= 2
    assert {world.step(f"s{i}")["attempt"] for i in range(7)} == {1} and len(world.llm.requests) == 7


def test_no_next_step_is_claimed_with_less_than_a_steps_time_left() -> None:
    world = World(work_seconds=MIN_NEXT_SECONDS - 1)
    reports = world.executor.handle(world.run({"a": step_data(), "b": step_data(depends_on=["a"])}))
    assert [r.step_id for r in reports] == ["a"] and world.step("b")["status"] == "READY"


def test_cancelled_run_is_never_claimed() -> None:
    world = World()
    assert world.executor.handle(world.run({"s1": step_data()}, status="CANCELLED")) == []
    assert world.step("s1")["status"] == "READY"
    assert world.runs.writes == 0


@pytest.mark.parametrize("change", ["cancel", "reclaim"])
def test_finalize_leaves_a_step_that_is_no_longer_ours(change: str) -> None:
    def respond(request: LlmRequest) -> LlmResult:
        step = world.runs.docs["r1"]["steps"]["s1"]
        if change == "cancel":
            step["status"] = "CANCELLED"
        else:
            step["claim"] = {"token": "someone-else"}
        return reply()

    world = World(FakeLlm(respond))
    with capture_logs() as logs:
        [report] = world.executor.handle(world.run({"s1": step_data()}))
    assert not report.finalized
    assert "outputs" not in world.step("s1")
    assert world.step("s1")["status"] == ("CANCELLED" if change == "cancel" else "RUNNING")
    assert any(e["event"] == "step.claim_conflict" and "finalize_discarded" in e["reason"] for e in logs)


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ({"s1": step_data(prompt_id="ghost")}, "PROMPT_NOT_FOUND"),
        ({"s1": step_data(profile="ghost")}, "PROFILE_NOT_ALLOWED"),
        ({"s1": step_data(profile="pro")}, "MODEL_NOT_ALLOWED"),
        ({"s1": step_data(vars={})}, "TEMPLATE_ERROR"),
        ({"s1": step_data(depends_on=["nope"])}, "INVALID_STEP"),
        ({"s1": {"type": "LLM_REPORT", "status": "READY"}}, "INVALID_STEP"),
    ],
)
def test_bad_configuration_fails_permanently_without_a_model_call(steps: dict, code: str) -> None:
    world = World()
    with capture_logs() as logs:
        world.executor.handle(world.run(steps))
    step = world.step("s1")
    assert step["status"] == "FAILED"
    assert step["error"]["code"] == code
    assert step["error"]["retryable"] is False
    assert step["error"]["attempt"] == 1
    assert world.llm.requests == []
    if code.endswith("NOT_ALLOWED"):
        assert any(e["event"] == "governance.violation" for e in logs)


def test_a_refused_profile_fails_the_step_even_while_its_prompt_cannot_be_read() -> None:
    from worker_llm_client.catalog.cache import CachedCatalog
    from worker_llm_client.errors import StorageUnavailable

    class PromptOutage(FakeCatalog):
        def get_prompt(self, prompt_id: str, version: int | None) -> Any:
            raise StorageUnavailable(f"reading prompt '{prompt_id}' from Firestore failed: RetryError")

    cache = CachedCatalog(PromptOutage([make_prompt()], [make_profile("off", enabled=False)]), ttl=30)
    cache.get_profile("off")  # an earlier step of this instance read it
    world = World(catalog=cache, allowed_llm_profiles=frozenset({"off"}))  # type: ignore[arg-type]
    world.executor.handle(world.run({"s1": step_data(profile="off")}))
    assert world.step("s1")["status"] == "FAILED"
    assert world.step("s1")["error"]["code"] == "PROFILE_NOT_ALLOWED"  # governance, not the outage


def test_profile_missing_from_the_store() -> None:
    world = World(allowed_llm_profiles=frozenset({"fast", "gone"}))
    world.executor.handle(world.run({"s1": step_data(profile="gone")}))
    assert world.step("s1")["error"]["code"] == "PROFILE_NOT_FOUND"


def test_schema_invalid_prompt() -> None:
    world = World(catalog=FakeCatalog([make_prompt(schema='{"type": 5}')], [make_profile()]))
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["error"]["code"] == "SCHEMA_INVALID"
    assert world.llm.requests == []


def test_a_final_output_failure_keeps_the_replies_beside_the_artifact_name_not_in_firestore() -> None:
    world = World(FakeLlm(lambda r: reply("MODEL SAID: not json")))
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    error = world.step("s1")["error"]
    [(name, (data, metadata))] = world.artifacts.objects.items()
    assert error["code"] == "OUTPUT_NOT_JSON" and error["retryable"] is False
    assert name.startswith("flow_runs/r1/s1/") and name.endswith(".attempt-1.invalid.json")
    assert error["message"].endswith(f"the rejected replies are kept at gs://artifacts/{name}")
    kept = json.loads(data)
    assert [r["text"] for r in kept["replies"]] == ["MODEL SAID: not json"] * 2  # the call and its repair
    assert kept["note"].endswith("NOT a report") and metadata["code"] == "OUTPUT_NOT_JSON"
    assert "MODEL SAID" not in json.dumps(world.runs.docs, default=str) + json.dumps(logs, default=str)


def test_a_replay_never_mistakes_kept_replies_for_a_report() -> None:
    answers = [reply("nope"), reply("nope")]
    world = World(FakeLlm(lambda r: answers.pop(0) if answers else reply()))
    world.executor.handle(world.run({"s1": step_data()}))
    world.run({"s1": step_data()})  # re-run the identical request
    world.executor.handle(world.runs.get_run("r1"))
    outputs = world.step("s1")["outputs"]
    assert outputs["cached"] is False and outputs["llmCalls"] == 1
    assert not outputs["gcs_uri"].endswith(".invalid.json")


def test_retryable_error_waits_then_fails_retryable_after_the_budget() -> None:
    world = World(FakeLlm(lambda r: LlmRateLimited("429", retry_after=120.0)))
    world.executor.handle(world.run({"s1": step_data(maxAttempts=2)}))
    step = world.step("s1")
    assert step["status"] == "RETRY_WAIT"
    assert step["error"]["code"] == "LLM_RATE_LIMITED"
    assert (step["retryAt"] - T0).total_seconds() == 120.0  # the server's hint beats the 30 s backoff
    world.clock.advance(121)
    world.executor.handle(world.runs.get_run("r1"))
    step = world.step("s1")
    assert step["status"] == "FAILED"
    assert step["attempt"] == 2
    assert step["error"]["retryable"] is True
    assert "retryAt" not in step


def test_transient_errors_are_retried_in_the_invocation_then_wait_for_the_next_attempt() -> None:
    world = World(FakeLlm(lambda r: LlmUnavailable("503")))
    world.executor.handle(world.run({"s1": step_data()}))
    assert len(world.llm.requests) == 6  # the call and 5 retries
    assert world.slept == [0.5, 1.0, 2.0, 4.0, 8.0]  # base 2, equal jitter at its floor
    assert world.step("s1")["status"] == "RETRY_WAIT"
    assert world.executor.handle(world.runs.get_run("r1")) == []  # not before retryAt
    assert len(world.llm.requests) == 6


def test_a_rate_limit_is_retried_after_the_servers_hint() -> None:
    world = World(_scripted(LlmRateLimited("429", retry_after=1.5)))
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["status"] == "SUCCEEDED" and world.step("s1")["outputs"]["llmCalls"] == 2
    assert world.slept == [1.5]


def test_two_unavailable_then_success_is_three_calls() -> None:
    world = World(_scripted(LlmUnavailable("503"), LlmUnavailable("503")))
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["outputs"]["llmCalls"] == 3 and world.slept == [0.5, 1.0]


def test_a_hint_longer_than_the_budget_stops_retrying_at_once() -> None:
    world = World(_scripted(LlmRateLimited("429", retry_after=600.0)))
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert world.slept == [] and len(world.llm.requests) == 1
    assert step["status"] == "RETRY_WAIT" and (step["retryAt"] - T0).total_seconds() == 600.0
    assert [e.get("gaveUp") for e in logs if e["event"] == "llm.retry"] == ["wait_exceeds_budget"]


def test_a_replayed_identical_request_reuses_the_artifact() -> None:
    world = World()
    world.executor.handle(world.run({"s1": step_data()}))
    first = dict(world.step("s1")["outputs"])
    # the worker died after the upload: the orchestrator (or the lease) puts the step up again
    world.runs.docs["r1"]["steps"]["s1"]["status"] = "READY"
    world.executor.handle(world.runs.get_run("r1"))
    second = world.step("s1")["outputs"]
    assert len(world.llm.requests) == 1
    assert world.step("s1")["attempt"] == 2
    assert second["cached"] is True
    assert second["llmCalls"] == 0
    assert second["gcs_uri"] == first["gcs_uri"]
    assert second["sha256"] == first["sha256"]
    assert second["responseId"] == first["responseId"]


def test_an_artifact_written_during_our_model_call_is_reused_on_412() -> None:
    other = b'{"title": "theirs", "severity": "high", "findings": ["b"]}'

    def respond(request: LlmRequest) -> LlmResult:
        # another worker, same request, finishes first while we wait for the model
        name = artifact_object_name("r1", "s1", request_fingerprint(make_prompt(), make_profile(), request))
        world.artifacts.objects[name] = (other, {"sha256": sha256_hex(other), "responseId": "their-response"})
        return reply()

    world = World(FakeLlm(respond))
    world.executor.handle(world.run({"s1": step_data()}))
    out = world.step("s1")["outputs"]
    assert out["cached"] is True and out["llmCalls"] == 1
    assert out["sha256"] == sha256_hex(other) and out["responseId"] == "their-response"
    assert [data for data, _ in world.artifacts.objects.values()] == [other]  # never overwritten


def test_logs_carry_ids_but_no_prompt_text_vars_or_output() -> None:
    world = World(FakeLlm(lambda r: reply('{"title": "MODEL-OUTPUT", "severity": "low", "findings": ["x"]}')))
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data(vars={"team": SECRET_VAR})}))
    events = [e["event"] for e in logs]
    assert events == ["step.claimed", "llm.request", "llm.call", "artifact.written", "step.succeeded"]
    flat = json.dumps(logs, default=str)
    for forbidden in (SECRET_VAR, "MODEL-OUTPUT", "Weekly report for", "terse reports"):
        assert forbidden not in flat


def test_an_expired_lease_is_reclaimed_with_the_next_attempt_and_logged() -> None:
    world = World()
    dead_worker = {"token": "dead", "worker": "w0", "claimedAt": T0, "leaseExpiresAt": T0}
    snapshot = world.run({"s1": step_data(status="RUNNING", attempt=1, claim=dead_worker)})
    world.clock.advance(1)
    with capture_logs() as logs:
        [report] = world.executor.handle(snapshot)
    assert report.status == "SUCCEEDED" and world.step("s1")["attempt"] == 2
    assert [e["event"] for e in logs][:2] == ["step.lease_expired", "step.claimed"]


def test_a_claim_whose_commit_was_retried_after_landing_is_still_ours() -> None:
    class RetriedCommitStore(InMemoryRunStore):
        def write_if_unchanged(self, run_id: str, update_time: Any, patch: Any) -> Written:
            super().write_if_unchanged(run_id, update_time, patch)
            return Written.UNCERTAIN  # the retry of the landed commit fails its own precondition

    world = World(runs=RetriedCommitStore())
    [report] = world.executor.handle(world.run({"s1": step_data()}))
    assert report.status == "SUCCEEDED" and report.finalized and len(world.llm.requests) == 1


def test_a_first_attempt_reuses_an_identical_artifact_without_calling_the_model() -> None:
    world = World()
    world.executor.handle(world.run({"s1": step_data()}))
    world.run({"s1": step_data()})  # the orchestrator resets the step entirely (attempt back to 0)
    [report] = world.executor.handle(world.runs.get_run("r1"))
    assert report.status == "SUCCEEDED" and world.step("s1")["attempt"] == 1
    assert world.step("s1")["outputs"]["cached"] is True and len(world.llm.requests) == 1


def test_a_dangling_schema_ref_fails_the_step_without_a_model_call() -> None:
    world = World(catalog=FakeCatalog([make_prompt(schema='{"$ref": "#/$defs/gone"}')], [make_profile()]))
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["error"]["code"] == "SCHEMA_INVALID" and world.llm.requests == []


def _scripted(*answers: LlmResult | Exception) -> FakeLlm:
    queue = list(answers)
    return FakeLlm(lambda request: queue.pop(0) if queue else reply())


def test_an_invalid_reply_is_repaired_within_the_budget_and_usage_is_summed() -> None:
    world = World(_scripted(reply('{"title": "t", "severity": "SECRET-SEVERITY", "findings": ["a"]}')))
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert step["status"] == "SUCCEEDED" and step["outputs"]["llmCalls"] == 2
    assert step["outputs"]["usage"]["totalTokens"] == 34  # 17 per request
    first, second = world.llm.requests
    assert len(first.contents) == 1
    assert [t.role for t in second.contents] == ["user", "model", "user"]
    assert second.contents[1].text == '{"title": "t", "severity": "SECRET-SEVERITY", "findings": ["a"]}'
    assert "$.severity: 'SECRET-SEVERITY' is not one of" in second.contents[2].text  # the model sees the detail
    assert [e["event"] for e in logs if e["event"] in ("output.invalid", "llm.retry")] == [
        "output.invalid",
        "llm.retry",
    ]
    assert "SECRET-SEVERITY" not in json.dumps(logs, default=str)  # the logs never do


@pytest.mark.parametrize(
    ("repair_attempts", "calls"),
    [(0, 1), (1, 2), (2, 3)],
)
def test_the_repair_budget_bounds_the_requests(repair_attempts: int, calls: int) -> None:
    catalog = FakeCatalog([make_prompt()], [make_profile(repair_attempts=repair_attempts)])
    world = World(FakeLlm(lambda r: reply('{"title": 1}')), catalog=catalog)
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["error"]["code"] == "OUTPUT_SCHEMA_MISMATCH"
    assert len(world.llm.requests) == calls


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (reply(None, finish_reason="SAFETY"), "LLM_BLOCKED"),
        (reply(None, block_reason="PROHIBITED_CONTENT", finish_reason=None), "LLM_BLOCKED"),
        (reply('{"title": "t", "sev', finish_reason="MAX_TOKENS"), "LLM_TRUNCATED"),
    ],
)
def test_blocked_and_truncated_replies_are_never_repaired(bad: LlmResult, code: str) -> None:
    world = World(FakeLlm(lambda r: bad))
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["error"]["code"] == code and len(world.llm.requests) == 1


def test_an_empty_reply_is_repaired_without_an_empty_model_turn() -> None:
    world = World(_scripted(reply(None)))
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.step("s1")["status"] == "SUCCEEDED"
    assert [t.role for t in world.llm.requests[1].contents] == ["user", "user"]
    assert "it was empty" in world.llm.requests[1].contents[1].text


def test_the_sweeper_redrives_a_retry_when_it_is_due_and_fails_it_after_the_budget() -> None:
    world = World(FakeLlm(lambda r: LlmUnavailable("503")))
    world.executor.handle(world.run({"s1": step_data(maxAttempts=2)}))
    assert world.runs.docs["r1"]["executor"]["wakeAt"] == world.step("s1")["retryAt"]
    assert world.executor.sweep(limit=10).runs == 0  # not due yet
    world.clock.advance(31)
    report = world.executor.sweep(limit=10)
    assert (report.runs, report.steps) == (1, 1)
    step = world.step("s1")
    assert step["status"] == "FAILED" and step["attempt"] == 2 and step["error"]["retryable"] is True
    assert "wakeAt" not in world.runs.docs["r1"]["executor"]  # nothing left waiting
    assert world.executor.sweep(limit=10).runs == 0


def test_the_sweeper_recovers_a_dead_workers_step_after_its_lease() -> None:
    world = World()
    snapshot = world.run({"s1": step_data()})
    world.executor.claim(snapshot)  # the worker dies right after claiming
    assert world.runs.docs["r1"]["executor"]["wakeAt"] == world.step("s1")["claim"]["leaseExpiresAt"]
    world.clock.advance(601)
    assert world.executor.sweep(limit=10).steps == 1
    assert world.step("s1")["status"] == "SUCCEEDED" and world.step("s1")["attempt"] == 2


def test_the_sweeper_clears_a_stale_wake_time_of_a_cancelled_run() -> None:
    world = World(FakeLlm(lambda r: LlmUnavailable("503")))
    world.executor.handle(world.run({"s1": step_data()}))
    world.runs.docs["r1"]["status"] = "CANCELLED"
    world.clock.advance(31)
    report = world.executor.sweep(limit=10)
    assert (report.runs, report.steps, report.repaired) == (1, 0, 1)
    assert world.step("s1")["status"] == "RETRY_WAIT" and "wakeAt" not in world.runs.docs["r1"]["executor"]
    assert world.executor.sweep(limit=10).runs == 0


def test_a_429_cools_the_model_down_for_the_other_steps_of_the_instance() -> None:
    answers = [LlmRateLimited("429", retry_after=5.0)]
    world = World(FakeLlm(lambda r: answers.pop(0) if answers else reply()), max_parallel_steps=1)
    with capture_logs() as logs:
        world.executor.handle(world.run({"a": step_data()}))  # a: 429, waits the hint, succeeds
        world.executor.handle(world.run({"b": step_data()}, run_id="r2"))
    assert world.slept == [5.0]  # the retry's wait covered the cooldown: b did not wait again
    requests = [e for e in logs if e["event"] == "llm.request"]
    assert [(e["queueSubmitted"], e["queueInflight"], e["queueCompleted"]) for e in requests] == [
        (1, 1, 0),
        (2, 1, 1),
        (3, 1, 2),
    ]


def test_a_cooldown_longer_than_the_budget_sends_nothing_and_waits_for_the_next_attempt() -> None:
    world = World(FakeLlm(lambda r: LlmRateLimited("429", retry_after=600.0)))
    world.executor.handle(world.run({"a": step_data()}))
    world.executor.handle(world.run({"b": step_data()}, run_id="r2"))
    assert len(world.llm.requests) == 1  # b never hit the rate-limited model
    b = world.runs.step("r2", "b")
    assert b["status"] == "RETRY_WAIT" and b["error"]["code"] == "LLM_RATE_LIMITED"


def test_retries_stop_when_the_invocation_is_running_out_of_time() -> None:
    world = World(FakeLlm(lambda r: LlmUnavailable("503")), work_seconds=2.0)
    with capture_logs() as logs:
        world.executor.handle(world.run({"s1": step_data()}))
    assert world.slept == [0.5, 1.0]  # the next wait (2 s) no longer fits before the deadline
    assert world.step("s1")["status"] == "RETRY_WAIT"
    assert [e.get("gaveUp") for e in logs if e["event"] == "llm.retry"][-1] == "wait_exceeds_budget"


def test_a_transient_retry_does_not_use_up_the_repair_budget() -> None:
    world = World(_scripted(LlmUnavailable("503"), reply('{"title": 1}')))  # then a valid reply
    world.executor.handle(world.run({"s1": step_data()}))
    step = world.step("s1")
    assert step["status"] == "SUCCEEDED" and step["outputs"]["llmCalls"] == 3  # 503, invalid, repaired


def test_no_request_is_sent_once_the_invocation_has_no_time_left() -> None:
    world = World(FakeLlm(lambda r: LlmUnavailable("503")), work_seconds=1.2)
    world.executor.handle(world.run({"s1": step_data()}))
    assert world.slept == [0.5]  # 0.5 fits; after it only 0.7 s is left, less than the next wait
    assert all(r.timeout_seconds is not None and r.timeout_seconds <= 1.2 for r in world.llm.requests)
    assert world.step("s1")["status"] == "RETRY_WAIT"


def test_a_sweep_shares_one_deadline_and_survives_a_broken_run() -> None:
    class Flaky(InMemoryRunStore):
        def get_run(self, run_id: str) -> Any:
            if run_id == "broken":
                raise RuntimeError("firestore went away")
            return super().get_run(run_id)

    world = World(FakeLlm(lambda r: LlmUnavailable("503")), runs=Flaky())
    for run_id in ("broken", "ok"):
        world.executor.handle(world.run({"s1": step_data()}, run_id=run_id))
    world.clock.advance(31)
    world.llm.respond = lambda r: reply()
    report = world.executor.sweep(limit=10)
    assert (report.failed, report.steps) == (1, 1) and world.runs.step("ok", "s1")["status"] == "SUCCEEDED"


def test_a_run_due_with_nothing_claimable_is_pushed_back_not_swept_forever() -> None:
    world = World(FakeLlm(lambda r: LlmUnavailable("503")))
    world.executor.handle(world.run({"a": step_data(status="SUCCEEDED"), "b": step_data(depends_on=["a"])}))
    world.runs.docs["r1"]["steps"]["a"]["status"] = "PENDING"  # the orchestrator resets the dependency
    world.clock.advance(31)
    assert world.executor.sweep(limit=10).repaired == 1
    assert world.runs.docs["r1"]["executor"]["wakeAt"] == world.clock.now() + timedelta(seconds=600)
    assert world.executor.sweep(limit=10).runs == 0


def test_an_event_finding_every_slot_taken_leaves_a_run_with_steps_in_flight_to_them() -> None:
    world = World(max_parallel_steps=1)
    held = world.executor.slots.take(world.executor.slots.capacity, timeout=0.0)
    leased = step_data(
        status="RUNNING", attempt=1, claim={"token": "other", "leaseExpiresAt": T0 + timedelta(minutes=10)}
    )
    with capture_logs() as logs:
        assert world.executor.handle(world.run({"a": step_data(), "b": leased})) == []
    assert [(e["event"], e["reason"]) for e in logs] == [("event.ignored", "instance_busy")]
    assert world.step("a")["status"] == "READY" and world.runs.writes == 0
    world.executor.slots.give(held)


def test_an_event_finding_every_slot_taken_still_claims_one_step_of_a_run_with_none_in_flight() -> None:
    world = World(max_parallel_steps=1)
    held = world.executor.slots.take(world.executor.slots.capacity, timeout=0.0)
    reports = world.executor.handle(world.run({"a": step_data(), "b": step_data(), "c": step_data()}))
    assert [r.step_id for r in reports] == ["a"]  # and no next step: it holds no slot and none is free
    assert [world.step(s)["status"] for s in "abc"] == ["SUCCEEDED", "READY", "READY"]
    assert world.executor.slots.take(1, timeout=0.0) == 0  # nothing was given back that was not taken
    world.executor.slots.give(held)
    assert world.executor.slots.take(world.executor.slots.capacity, timeout=0.0) == world.executor.slots.capacity
