"""Chaos: scripted model faults, duplicate deliveries, a worker killed mid-call and an orchestrator
cancelling a running step, against the real local stack. Every fault is injected on purpose (the
stub's script, a SIGKILL, a write), never left to timing; the only waits are for states, with
timeouts. Runs in projects without a trigger are watched with ``Stack(process, db, None)``: its
``wait_for`` and ``steps`` need only the database and the process to show the log tail of.

Each test records figures (faults injected, model calls, outcomes) for docs/reliability.md; see
tests/chaos/conftest.py for where they go.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.cloud.firestore_v1.field_path import FieldPath

from devstack.cloudevents import deliver, document_event_bytes
from devstack.gemini_stub import Reply
from devstack.services import LOOPBACK_OPENER, wait_until
from tests.builders import step_data
from tests.stacks import Stack

pytestmark = pytest.mark.e2e
VARS = {"team": "payments", "week": "2026-W47", "notes": ["cut p95 by 30%"]}
RETRY_PROJECT = "chaos-retry"  # no trigger registered: only our own processes touch these runs
CRASH_PROJECT = "chaos-crash"
LEASE_SECONDS = 3
Steps = dict[str, Any]


# -- helpers ------------------------------------------------------------------------------------


def report_step(**extra: Any) -> dict[str, Any]:
    return step_data(prompt_id="weekly_report", profile="flash-json", vars=VARS, **extra)


def put_run(db: Any, run_id: str, steps: Steps) -> bytes:
    """Write the run; return the event body the emulator's trigger would POST for that write."""
    data = {"status": "RUNNING", "steps": steps}
    written = db.collection("flow_runs").document(run_id).set(data)
    return base64.b64encode(document_event_bytes(db.project, run_id, data, when=written.update_time))


def sweep(sweeper: Any) -> dict[str, int]:
    """What Cloud Scheduler does every few minutes."""
    request = urllib.request.Request(f"{sweeper.url}/?limit=100", data=b"", method="POST")
    with LOOPBACK_OPENER.open(request, timeout=60) as response:
        summary: dict[str, int] = json.loads(response.read())
        return summary


def logs_of(*processes: Any) -> list[dict[str, Any]]:
    return [line for process in processes for line in process.json_log_lines()]


def run_lines(lines: list[dict[str, Any]], run_id: str, *messages: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("runId") == run_id and line.get("message") in messages]


def simulate_time_passing(db: Any, run_id: str, *step_ids: str) -> None:
    """Stands in for waiting out the step backoff (30 s and up): move the steps' retryAt and the run's
    executor.wakeAt into the past, which is all that waiting would change."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    updates = {FieldPath("steps", step_id, "retryAt").to_api_repr(): past for step_id in step_ids}
    db.collection("flow_runs").document(run_id).update({**updates, "executor.wakeAt": past})


def all_in(*statuses: str) -> Callable[[Steps], bool]:
    return lambda steps: all(step["status"] in statuses for step in steps.values())


def report_objects(bucket: Any, run_id: str) -> list[str]:
    """Report artifacts of the run (kept rejected replies, ``*.invalid.json``, are not reports)."""
    names = [blob.name for blob in bucket.list_blobs(prefix=f"flow_runs/{run_id}/")]
    return [name for name in names if not name.endswith(".invalid.json")]


# -- 1. the model is down for good ----------------------------------------------------------------


@pytest.fixture(scope="module")
def retry_db(chaos_db: Callable[[str], Any]) -> Any:
    return chaos_db(RETRY_PROJECT)


@pytest.fixture(scope="module")
def retry_worker(module_functions: Any, retry_db: Any) -> Any:
    return module_functions.start("handle_flow_run_event", RETRY_PROJECT)


@pytest.fixture(scope="module")
def sweeper(module_functions: Any, retry_db: Any) -> Any:
    return module_functions.start("sweep_flow_runs", RETRY_PROJECT)


def test_a_model_down_for_good_fails_the_step_after_max_attempts_with_every_call_accounted(
    retry_worker: Any, sweeper: Any, retry_db: Any, stub: Any, run_id: str, figures: dict[str, Any]
) -> None:
    stub.script(*[Reply.http_error(503, "The model is overloaded.")] * 20)
    body = put_run(retry_db, run_id, {"s": report_step(maxAttempts=2)})
    assert deliver(retry_worker.url, run_id, body, "ev-1") == 200  # answers once the invocation is done
    waiting = Stack(retry_worker, retry_db, None).wait_for(run_id, all_in("RETRY_WAIT"))["s"]
    assert (waiting["attempt"], waiting["error"]["code"], waiting["error"]["retryable"]) == (1, "LLM_UNAVAILABLE", True)
    simulate_time_passing(retry_db, run_id, "s")
    summary = sweep(sweeper)
    failed = Stack(sweeper, retry_db, None).wait_for(run_id, all_in("FAILED"))["s"]
    error = failed["error"]
    assert (failed["attempt"], error["code"], error["retryable"], error["attempt"]) == (2, "LLM_UNAVAILABLE", True, 2)
    assert summary["steps"] == 1 and "outputs" not in failed
    finals = run_lines(logs_of(retry_worker, sweeper), run_id, "step.retry_scheduled", "step.failed")
    assert [line["message"] for line in finals] == ["step.retry_scheduled", "step.failed"]
    assert stub.calls() == sum(line["llmCalls"] for line in finals)
    figures.update(
        faultsInjected=stub.calls(),
        modelCalls=stub.calls(),
        modelCallsPerAttempt=[line["llmCalls"] for line in finals],
        attempts=failed["attempt"],
        outcome=f"{failed['status']} {error['code']} retryable={error['retryable']}",
    )


def test_a_primary_that_stays_down_is_served_by_its_fallback_with_every_call_accounted(
    retry_worker: Any, retry_db: Any, stub: Any, anthropic_stub: Any, run_id: str, figures: dict[str, Any]
) -> None:
    """flash-with-fallback: Gemini answers 503 to every request; Claude (claude-json) serves."""
    stub.script(*[Reply.http_error(503, "The model is overloaded.")] * 20, model="gemini-2.5-flash")
    steps = {f"s{n}": step_data(prompt_id="weekly_report", profile="flash-with-fallback", vars=VARS) for n in range(3)}
    body = put_run(retry_db, run_id, steps)
    assert deliver(retry_worker.url, run_id, body, f"ev-{run_id}") == 200  # the worker dedupes event ids
    done = Stack(retry_worker, retry_db, None).wait_for(run_id, all_in("SUCCEEDED", "FAILED"))
    assert {s["status"] for s in done.values()} == {"SUCCEEDED"}
    outputs = [s["outputs"] for s in done.values()]
    assert {(o["llmProfile"], o["provider"], o["fallbackFrom"]) for o in outputs} == {
        ("claude-json", "anthropic", "flash-with-fallback")
    }
    assert sum(o["llmCalls"] for o in outputs) == stub.calls() + anthropic_stub.calls()
    assert anthropic_stub.calls() == 3
    switches = run_lines(retry_worker.json_log_lines(), run_id, "llm.fallback")
    assert [(line["toProfile"], line["code"]) for line in switches] == [("claude-json", "LLM_UNAVAILABLE")] * 3
    figures.update(
        faultsInjected=stub.calls(),
        modelCalls=stub.calls() + anthropic_stub.calls(),
        fallbackCalls=anthropic_stub.calls(),
        outcome="3/3 SUCCEEDED by claude-json (fallbackFrom flash-with-fallback)",
    )


# -- 2. duplicate deliveries ----------------------------------------------------------------------


def _post_concurrently(url: str, run_id: str, body: bytes, times: int) -> list[int]:
    start = threading.Barrier(times)

    def post(n: int) -> int:
        start.wait(timeout=10)
        return deliver(url, run_id, body, f"dup-{n}")

    with ThreadPoolExecutor(times) as pool:
        return list(pool.map(post, range(times)))


def _wait_for_lines(stack: Stack, run_id: str, message: str, count: int) -> list[dict[str, Any]]:
    wait_until(lambda: len(run_lines(stack.logs(), run_id, message)) >= count, timeout=10, what=f"{count} {message}")
    return run_lines(stack.logs(), run_id, message)


def test_an_event_delivered_eight_more_times_at_once_calls_the_model_once_per_step(
    stack: Stack, stub: Any, run_id: str, figures: dict[str, Any]
) -> None:
    stub.latency = 0.3  # every call in flight long enough for the duplicates to race the claim
    step_ids = ("a", "b.v2", "c")
    body = put_run(stack.db, run_id, {step_id: report_step() for step_id in step_ids})
    statuses = _post_concurrently(stack.function.url, run_id, body, 8)  # the emulator delivered it once too
    final = stack.wait_for(run_id, all_in("SUCCEEDED"))
    assert statuses == [200] * 8
    assert stub.calls() == 3
    assert {(final[s]["attempt"], final[s]["outputs"]["llmCalls"]) for s in step_ids} == {(1, 1)}
    assert len(report_objects(stack.bucket, run_id)) == 3
    conflicts = _wait_for_lines(stack, run_id, "step.claim_conflict", 8)  # nine deliveries, one claim won
    assert len(conflicts) == 8 and {line.get("reason") for line in conflicts} == {"run_changed_since_snapshot"}
    figures.update(
        deliveries=1 + len(statuses),
        steps=len(step_ids),
        modelCalls=stub.calls(),
        claimConflicts=len(conflicts),
        reportArtifacts=len(report_objects(stack.bucket, run_id)),
        outcome="all SUCCEEDED, attempt 1",
    )


# -- 3. a worker killed in the middle of a model call ---------------------------------------------


def _deliver_in_background(url: str, run_id: str, body: bytes) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def post() -> None:
        try:
            outcome.append(deliver(url, run_id, body, "crash-1"))
        except Exception as exc:  # the worker dies before answering: Eventarc would redeliver
            outcome.append(exc)

    thread = threading.Thread(target=post, name="delivery", daemon=True)
    thread.start()
    return thread, outcome


def test_a_worker_killed_mid_call_is_taken_over_by_the_sweeper_once_its_lease_ends(
    functions: Any, chaos_db: Callable[[str], Any], stub: Any, run_id: str, figures: dict[str, Any]
) -> None:
    db = chaos_db(CRASH_PROJECT)
    worker = functions.start("handle_flow_run_event", CRASH_PROJECT, LEASE_SECONDS=str(LEASE_SECONDS))
    stub.script(Reply.delay(30))
    thread, outcome = _deliver_in_background(worker.url, run_id, put_run(db, run_id, {"s": report_step()}))
    assert stub.wait_for_calls(1, timeout=30)
    worker.kill()  # SIGKILL while the model call is in flight
    thread.join(timeout=10)
    held = Stack(worker, db, None).steps(run_id)["s"]
    assert (held["status"], held["attempt"]) == ("RUNNING", 1) and isinstance(outcome[0], Exception)
    lease_end = held["claim"]["leaseExpiresAt"]
    wait_until(lambda: datetime.now(UTC) > lease_end, timeout=LEASE_SECONDS + 10, what="the lease to end")
    sweeper = functions.start("sweep_flow_runs", CRASH_PROJECT, LEASE_SECONDS=str(LEASE_SECONDS))
    summary = sweep(sweeper)
    done = Stack(sweeper, db, None).wait_for(run_id, all_in("SUCCEEDED"))["s"]
    assert (done["attempt"], done["outputs"]["llmCalls"], summary["steps"]) == (2, 1, 1)
    [expired] = run_lines(logs_of(sweeper), run_id, "step.lease_expired")
    assert (expired["stepId"], expired["attempt"]) == ("s", 1)
    figures.update(
        faultsInjected=1,
        modelCalls=stub.calls(),
        killedDelivery=type(outcome[0]).__name__,
        leaseSeconds=LEASE_SECONDS,
        outcome=f"{done['status']} at attempt {done['attempt']} via the sweeper",
    )


# -- 4. an orchestrator cancels a running step ----------------------------------------------------


def test_a_step_cancelled_during_its_model_call_stays_cancelled(
    stack: Stack, stub: Any, run_id: str, figures: dict[str, Any]
) -> None:
    stub.script(Reply.delay(2.0))
    put_run(stack.db, run_id, {"s.1": report_step()})
    stack.wait_for(run_id, all_in("RUNNING"))
    assert stub.wait_for_calls(1, timeout=10)
    stack.db.collection("flow_runs").document(run_id).update(
        {FieldPath("steps", "s.1", "status").to_api_repr(): "CANCELLED"}
    )
    stack.wait_for_log(
        lambda line: (
            line.get("runId") == run_id
            and line.get("message") == "step.claim_conflict"
            and line.get("reason") == "finalize_discarded_step_no_longer_held"
        ),
        timeout=20,
    )
    step = stack.steps(run_id)["s.1"]
    assert step["status"] == "CANCELLED" and step["attempt"] == 1
    assert "outputs" not in step and "finishedAt" not in step and "error" not in step
    assert stub.calls() == 1
    figures.update(
        modelCalls=stub.calls(),
        outcome="CANCELLED kept, finalize discarded",
        reportArtifactsLeftBehind=len(report_objects(stack.bucket, run_id)),
    )


# -- 5. 30 % of model calls fail transiently ---------------------------------------------------------

RUNS, STEPS_PER_RUN = 10, 5
STEPS = RUNS * STEPS_PER_RUN
SCRIPTED_REPLIES = 200  # far more than the run needs: the stub serves them in order


def _fault_script() -> list[Reply]:
    """Reply i is a fault when i % 10 in (0, 3, 6): 503 and 429 (retry hint 0.2 s) in turn."""
    faults = itertools.cycle([Reply.http_error(503, "overloaded"), Reply.http_error(429, "quota", retry_delay="0.2s")])
    return [next(faults) if i % 10 in (0, 3, 6) else Reply.ok() for i in range(SCRIPTED_REPLIES)]


def _calls_for(script: list[Reply], successes: int) -> int:
    """Replies are served in order and every step stops at its first success, so the run ends with
    the reply that is the ``successes``-th success, whatever the interleaving."""
    ok_positions = [i for i, reply in enumerate(script) if reply.kind != "raw"]
    return ok_positions[successes - 1] + 1


def _write_runs(db: Any, run_ids: list[str]) -> None:
    batch = db.batch()  # one commit: the ten events are raised together
    steps = {f"s{n}": report_step() for n in range(STEPS_PER_RUN)}
    for run_id in run_ids:
        batch.set(db.collection("flow_runs").document(run_id), {"status": "RUNNING", "steps": steps})
    batch.commit()


def _wait_runs(stack: Stack, run_ids: list[str], done: Callable[[Steps], bool], timeout: float) -> dict[str, Steps]:
    deadline = time.monotonic() + timeout
    while True:
        runs = {run_id: stack.steps(run_id) for run_id in run_ids}
        if all(done(steps) for steps in runs.values()):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(
                f"runs did not settle: {json.dumps(runs, default=str)[:3000]}\n{stack.function.log_tail()}"
            )
        time.sleep(0.2)


def _redrive_retry_waits(stack: Stack, runs: dict[str, Steps]) -> int:
    """A step whose in-invocation retries ran out of budget waits in RETRY_WAIT; let its retry come
    (the write re-triggers the function, which claims a due retry)."""
    waiting = {
        run_id: [s for s, step in steps.items() if step["status"] == "RETRY_WAIT"] for run_id, steps in runs.items()
    }
    for run_id, step_ids in waiting.items():
        if step_ids:
            simulate_time_passing(stack.db, run_id, *step_ids)
    return sum(len(step_ids) for step_ids in waiting.values())


def _most_runs_in_flight(lines: list[dict[str, Any]], run_ids: list[str]) -> int:
    """How many runs were being worked on at once (from first claim to last finalize, per the logs)."""
    windows = []
    for run_id in run_ids:
        stamps = [line["time"] for line in run_lines(lines, run_id, "step.claimed", "step.succeeded")]
        windows.append((min(stamps), max(stamps)))
    return max(sum(1 for start, end in windows if start <= moment <= end) for moment, _ in windows)


def _absorbed_figures(script: list[Reply], calls: int, steps: list[Steps], requests: list[Any]) -> dict[str, Any]:
    served = script[:calls]
    return {
        "runs": RUNS,
        "steps": STEPS,
        "faultsInjected": sum(1 for reply in served if reply.kind == "raw"),
        "faults503": sum(1 for reply in served if reply.status == 503),
        "faults429": sum(1 for reply in served if reply.status == 429),
        "modelCalls": calls,
        "stepsRetriedInInvocation": sum(1 for step in steps if step["outputs"]["llmCalls"] > 1),
        "mostCallsForOneStep": max(step["outputs"]["llmCalls"] for step in steps),
        "modelCallsSpanSeconds": round(requests[-1].received_at - requests[0].received_at, 2),
        "outcome": f"{sum(1 for step in steps if step['status'] == 'SUCCEEDED')} of {STEPS} SUCCEEDED",
    }


def _runs_lines(stack: Stack, run_ids: list[str], message: str) -> list[dict[str, Any]]:
    lines = stack.logs()
    return [line for run_id in run_ids for line in run_lines(lines, run_id, message)]


def _own_write_events(stack: Stack, run_ids: list[str]) -> dict[str, Any]:
    """The events our own claim and finalize writes caused (per run at least one claim write and
    one finalize write: finalizes that queue up are committed together): each must be a no-op that
    builds no client."""
    wanted = RUNS * 2
    wait_until(lambda: len(_runs_lines(stack, run_ids, "event.ignored")) >= wanted, timeout=30, what="own events")
    ignored = _runs_lines(stack, run_ids, "event.ignored")
    assert {line["reason"] for line in ignored} == {"nothing_runnable"}
    received = {line["eventId"]: line["time"] for line in _runs_lines(stack, run_ids, "event.received")}
    handled_ms = [(_ts(line["time"]) - _ts(received[line["eventId"]])) * 1000 for line in ignored]
    return {"ownWriteEvents": len(ignored), "ownWriteEventMaxMs": round(max(handled_ms), 1)}


def _ts(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def test_thirty_percent_transient_faults_across_fifty_steps_are_absorbed(
    stack: Stack, stub: Any, run_id: str, figures: dict[str, Any]
) -> None:
    """The emulator delivers trigger events one at a time, so the runs are worked in turn
    (``mostRunsInFlight``); with faults at least three replies apart no step then gets more than two
    in a row, which the 5 s in-invocation budget absorbs. Concurrent delivery (Eventarc) could give
    a step more: it would wait in RETRY_WAIT and be re-driven (``stepsThroughRetryWait``)."""
    script = _fault_script()
    stub.script(*script)
    run_ids = [f"{run_id}-{n}" for n in range(RUNS)]
    _write_runs(stack.db, run_ids)
    settled = _wait_runs(stack, run_ids, all_in("SUCCEEDED", "FAILED", "RETRY_WAIT"), timeout=120)
    step_retries = _redrive_retry_waits(stack, settled)
    final = _wait_runs(stack, run_ids, all_in("SUCCEEDED"), timeout=60)
    calls, lines = stub.calls(), stack.logs()
    faults_served = sum(1 for reply in script[:calls] if reply.kind == "raw")
    assert calls == STEPS + faults_served == _calls_for(script, STEPS)  # each fault: one more call, no more
    steps = [step for steps in final.values() for step in steps.values()]
    scheduled = _runs_lines(stack, run_ids, "step.retry_scheduled")
    assert sum(step["outputs"]["llmCalls"] for step in steps) + sum(line["llmCalls"] for line in scheduled) == calls
    assert sum(step["attempt"] for step in steps) == STEPS + len(scheduled) == STEPS + step_retries
    assert sum(len(report_objects(stack.bucket, r)) for r in run_ids) == STEPS
    figures.update(_absorbed_figures(script, calls, steps, stub.requests))
    figures.update(stepsThroughRetryWait=step_retries, mostRunsInFlight=_most_runs_in_flight(lines, run_ids))
    figures.update(_own_write_events(stack, run_ids))
