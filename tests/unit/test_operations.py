"""The operator commands' pure parts: a run's rows, table and JSON; the log filter; the re-drive decision."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.builders import T0, later, make_run, step_data
from worker_llm_client.core.retry_policy import after_failure
from worker_llm_client.core.step_selection import runnable_steps
from worker_llm_client.core.transitions import Delete, claim_attempt, max_attempts
from worker_llm_client.core.wake import apply_patch
from worker_llm_client.errors import LlmUnavailable
from worker_llm_client.operations import OperatorError, rfc3339
from worker_llm_client.operations.logs import entry_line, gcloud_args, log_filter, paste_line, quote
from worker_llm_client.operations.redrive import landed, plan
from worker_llm_client.operations.status import (
    as_json,
    duration,
    error_cell,
    step_rows,
    still_active,
    table,
    watch,
)

SENTINEL = "SENTINEL-do-not-print"
NOW = later(100)
SERVER_TIME = object()  # stands for firestore.SERVER_TIMESTAMP


def _error(code: str = "LLM_UNAVAILABLE", message: str = "HTTP 503", retryable: bool = True, attempt: int = 3) -> Any:
    return {"code": code, "message": message, "retryable": retryable, "attempt": attempt}


def _outputs(**extra: Any) -> dict[str, Any]:
    usage = {"promptTokens": 120, "outputTokens": 30, "thoughtsTokens": 0, "cachedTokens": 0, "totalTokens": 150}
    return {"gcs_uri": "gs://b/flow_runs/r/done/f.json", "usage": usage, "modelVersion": SENTINEL} | extra


def _steps() -> dict[str, dict[str, Any]]:
    """One step of each kind an operator meets, with a sentinel in what must never be shown."""
    secret = {"vars": {"note": SENTINEL}, "prompt_id": SENTINEL}
    return {
        "done": step_data("SUCCEEDED", attempt=1, startedAt=later(1), finishedAt=later(4.5),
                          outputs=_outputs(costUsd=0.0012), **secret),
        "broken": step_data("FAILED", attempt=3, startedAt=later(10), finishedAt=later(75), error=_error(), **secret),
        "waiting": step_data("RETRY_WAIT", attempt=1, maxAttempts=5, startedAt=later(2), retryAt=later(130),
                             error=_error("LLM_RATE_LIMITED", "quota " * 30, attempt=1), **secret),
        "running": step_data("RUNNING", attempt=2, startedAt=later(40), claim={"leaseExpiresAt": later(640)}, **secret),
        "gate": step_data("PENDING", type="APPROVAL", **secret),
    }  # fmt: skip


def test_rows_hold_status_attempts_timings_error_artifact_tokens_and_cost() -> None:
    rows = {row.step_id: row for row in step_rows(make_run(_steps()), NOW)}
    assert list(rows) == ["broken", "done", "gate", "running", "waiting"]  # by id
    done, broken, waiting, running = rows["done"], rows["broken"], rows["waiting"], rows["running"]
    assert (done.attempt, done.max_attempts, done.duration_seconds) == (1, 3, 3.5)
    assert (done.artifact, done.tokens["total"], done.cost_usd) == ("gs://b/flow_runs/r/done/f.json", 150, 0.0012)
    assert (broken.status, broken.duration_seconds, broken.error) == ("FAILED", 65.0, _error())
    assert (waiting.max_attempts, waiting.retry_at, waiting.duration_seconds) == (5, later(130), None)
    assert running.duration_seconds == 60.0  # now - started while RUNNING
    assert (rows["gate"].type, rows["gate"].status, rows["gate"].max_attempts) == ("APPROVAL", "PENDING", None)


def test_the_table_is_in_utc_whatever_the_timezone_of_the_values_and_clips_messages() -> None:
    started = datetime(2026, 11, 22, 14, 0, 1, 500000, tzinfo=timezone(timedelta(hours=2)))
    run = make_run(_steps() | {"tz": step_data("RUNNING", attempt=1, startedAt=started)}, run_id="r-42")
    text = table(run, step_rows(run, NOW), NOW)
    lines = text.splitlines()
    assert lines[0] == "run r-42  status RUNNING  wakeAt —  as of 2026-11-22T12:01:40Z (UTC)"
    assert lines[1].split() == [
        "STEP", "TYPE", "STATUS", "ATTEMPT", "STARTED", "FINISHED", "DURATION", "RETRY_AT", "TOKENS", "COST", "ERROR",
        "ARTIFACT",
    ]  # fmt: skip
    broken = next(line for line in lines if line.startswith("broken"))
    assert broken.split()[:8] == [
        "broken", "LLM_REPORT", "FAILED", "3/3", "2026-11-22T12:00:10Z", "2026-11-22T12:01:15Z", "1m05s", "—",
    ]  # fmt: skip
    assert "LLM_UNAVAILABLE: HTTP 503" in broken
    done = next(line for line in lines if line.startswith("done"))
    assert "150" in done.split() and "$0.001200" in done and done.endswith("gs://b/flow_runs/r/done/f.json")
    waiting = next(line for line in lines if line.startswith("waiting"))
    assert "1/5" in waiting and "2026-11-22T12:02:10Z" in waiting and "…" in waiting
    assert "2026-11-22T12:00:01Z" in next(line for line in lines if line.startswith("tz"))
    assert next(line for line in lines if line.startswith("gate")).split()[:4] == ["gate", "APPROVAL", "PENDING", "—"]
    assert SENTINEL not in text


def test_json_is_one_document_of_plain_values_with_the_error_whole() -> None:
    run = make_run(_steps(), run_id="r-42")
    document = json.loads(json.dumps(as_json(run, step_rows(run, NOW), NOW)))
    assert (document["runId"], document["status"], document["asOf"]) == ("r-42", "RUNNING", "2026-11-22T12:01:40Z")
    steps = {step["id"]: step for step in document["steps"]}
    assert steps["broken"]["finishedAt"] == "2026-11-22T12:01:15Z" and steps["broken"]["error"] == _error()
    assert steps["waiting"]["error"]["message"] == "quota " * 30  # not clipped
    assert steps["waiting"]["retryAt"] == "2026-11-22T12:02:10Z" and steps["waiting"]["maxAttempts"] == 5
    assert steps["done"]["tokens"] == {"total": 150, "prompt": 120, "output": 30} and steps["done"]["costUsd"] == 0.0012
    assert steps["running"]["leaseExpiresAt"] == "2026-11-22T12:10:40Z"
    assert steps["gate"] == steps["gate"] | {"type": "APPROVAL", "artifact": None, "costUsd": None, "error": None}
    assert SENTINEL not in json.dumps(document)


@pytest.mark.parametrize(
    ("outputs", "expected"),
    [
        ({"usage": {"promptTokens": 7, "outputTokens": 2}}, "7/2"),
        ({"usage": {"outputTokens": 2}}, "?/2"),
        ({"costUsd": None, "usage": {"totalTokens": True}}, "—"),
        ({}, "—"),
    ],
)
def test_tokens_fall_back_to_prompt_and_output_and_bad_values_show_nothing(outputs: Any, expected: str) -> None:
    run = make_run({"s": step_data("SUCCEEDED", outputs=outputs, maxAttempts="x")})
    [row] = step_rows(run, NOW)
    assert table(run, [row], NOW).splitlines()[2].split()[3] == "0/?"  # malformed maxAttempts
    assert (table(run, [row], NOW).splitlines()[2].split()[8], row.cost_usd) == (expected, None)


def test_durations_and_clipped_errors_read_at_a_glance() -> None:
    assert [duration(s) for s in (None, 0.04, 59.94, 65, 3599, 3600 * 2 + 61)] == [
        "—", "0.0s", "59.9s", "1m05s", "59m59s", "2h01m",
    ]  # fmt: skip
    assert error_cell({"code": "X", "message": "two\nlines"}) == "X: two lines"
    assert len(error_cell({"code": "X", "message": "m" * 500})) == 60
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 6)) == "2026-01-02T03:04:05.000006Z"  # noqa: DTZ001 (naive means UTC)


@pytest.mark.parametrize(
    ("steps", "run_status", "active"),
    [
        ({"a": step_data("RUNNING")}, "RUNNING", True),
        ({"a": step_data("RUNNING", type="APPROVAL")}, "RUNNING", True),
        ({"a": step_data("READY")}, "RUNNING", True),
        ({"a": step_data("READY")}, "CANCELLED", False),
        ({"a": step_data("FAILED"), "b": step_data("READY", depends_on=["a"])}, "RUNNING", False),
        ({"a": step_data("SUCCEEDED"), "b": step_data("READY", depends_on=["a"])}, "RUNNING", True),
        ({"a": step_data("READY", type="APPROVAL"), "b": step_data("RETRY_WAIT")}, "RUNNING", False),
        ({}, "RUNNING", False),
    ],
)
def test_a_run_is_active_while_a_step_runs_or_is_ready_to_be_claimed(
    steps: dict[str, Any], run_status: str, active: bool
) -> None:
    assert still_active(make_run(steps, status=run_status)) is active


def test_watch_refreshes_until_nothing_is_active_or_the_timeout() -> None:
    frames = [make_run({"a": step_data("RUNNING")}), make_run({"a": step_data("RUNNING")}), make_run({"a": step_data("SUCCEEDED")})]  # fmt: skip
    shown: list[str] = []
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def show(run: Any) -> None:
        shown.append(run.steps["a"].status)

    assert watch(lambda: frames.pop(0), show, 2.0, sleep=sleep, monotonic=lambda: clock[0]) is True
    assert (shown, clock[0]) == (["RUNNING", "RUNNING", "SUCCEEDED"], 4.0)
    shown.clear()
    stuck = make_run({"a": step_data("RUNNING")})
    assert watch(lambda: stuck, show, 2.0, timeout=5.0, sleep=sleep, monotonic=lambda: clock[0]) is False
    assert len(shown) == 4 and clock[0] == 9.0  # shown at 0, 2, 4 and 5 s


def test_the_log_filter_quotes_ids_and_the_command_pastes_into_a_shell() -> None:
    assert log_filter("run-1") == 'jsonPayload.runId="run-1"'
    assert log_filter('r"1', "a\\b") == 'jsonPayload.runId="r\\"1" AND jsonPayload.stepId="a\\\\b"'
    assert quote("it's") == '"it\'s"'
    query = log_filter("run-1", "s.1")
    assert gcloud_args(query, "p") == [
        "logging", "read", query, "--project=p", "--order=asc", "--format=json", "--freshness=30d",
    ]  # fmt: skip
    line = paste_line(log_filter("it's", 'a"b'), "p")
    assert shlex.split(line) == ["gcloud", *gcloud_args(log_filter("it's", 'a"b'), "p")]


def test_a_log_entry_is_one_line_and_missing_fields_are_tolerated() -> None:
    payload = {"message": "step.failed", "stepId": "s1", "attempt": 2, "code": "LLM_TIMEOUT", "usage": SENTINEL}
    entry = {"timestamp": "2026-11-22T12:00:01.5Z", "severity": "WARNING", "jsonPayload": payload}
    assert entry_line(entry) == "2026-11-22T12:00:01.5Z  WARNING   step.failed  stepId=s1 attempt=2 code=LLM_TIMEOUT"
    assert entry_line({}) == "—  DEFAULT   —"
    assert entry_line({"jsonPayload": {"timestamp": "t", "severity": "INFO", "message": "event.received"}}) == (
        "t  INFO      event.received"
    )
    assert entry_line({"textPayload": "Traceback\n  more", "severity": "ERROR", "jsonPayload": "x"}) == (
        "—  ERROR     Traceback"
    )


# --- re-drive -------------------------------------------------------------------------------------


def _plan(steps: dict[str, Any], step_id: str = "s.1", force: bool = False, status: str = "RUNNING") -> Any:
    return plan(make_run(steps, run_id="r", status=status), step_id, "alice@host", SERVER_TIME, force)


def test_a_failed_step_goes_back_to_ready_with_a_fresh_budget_and_its_error_kept_aside() -> None:
    failed = step_data("FAILED", attempt=3, finishedAt=T0, error=_error(), outputs={"x": 1}, retryAt=T0)
    done, patch = _plan({"s.1": failed})
    assert (
        done.describe() == "flow_runs/r steps.s.1 FAILED (attempt 3) -> READY; maxAttempts 6; re-drive #1 by alice@host"
    )
    assert patch == {
        ("steps", "s.1", "status"): "READY",
        ("steps", "s.1", "maxAttempts"): 6,
        ("steps", "s.1", "retryAt"): Delete.FIELD,
        ("steps", "s.1", "finishedAt"): Delete.FIELD,
        ("steps", "s.1", "outputs"): Delete.FIELD,
        ("steps", "s.1", "error"): Delete.FIELD,
        ("steps", "s.1", "redrive"): {
            "by": "alice@host",
            "at": SERVER_TIME,
            "fromStatus": "FAILED",
            "fromAttempt": 3,
            "previousError": _error(),
            "previousMaxAttempts": None,
            "budget": 3,
            "count": 1,
        },
        ("executor", "wakeAt"): SERVER_TIME,
    }


def test_the_executor_claims_a_re_driven_step_and_retries_it_within_the_fresh_budget() -> None:
    run = make_run({"s.1": step_data("FAILED", attempt=3, error=_error())})
    _, patch = plan(run, "s.1", "alice@host", NOW)
    step = apply_patch(run, patch).steps["s.1"]
    assert [s.step_id for s in runnable_steps(apply_patch(run, patch), NOW)] == ["s.1"]
    assert claim_attempt(step, NOW) == (4, False)
    assert after_failure(LlmUnavailable("503"), 4, max_attempts(step) or 0, NOW).retry_at is not None
    assert after_failure(LlmUnavailable("503"), 6, max_attempts(step) or 0, NOW).retry_at is None  # 3 more, no more


def test_the_budget_is_the_steps_own_and_a_second_re_drive_grants_it_again() -> None:
    waiting = step_data("RETRY_WAIT", attempt=2, maxAttempts=5, retryAt=T0, error=_error(attempt=2))
    first, patch = _plan({"s.1": waiting})
    assert (first.from_status, first.max_attempts, first.count) == ("RETRY_WAIT", 7, 1)
    assert patch[("steps", "s.1", "redrive")]["previousMaxAttempts"] == 5
    run = apply_patch(make_run({"s.1": waiting}, run_id="r"), patch)
    later_run = make_run({"s.1": dict(run.steps["s.1"].data) | {"status": "SUCCEEDED", "attempt": 3}}, run_id="r")
    second, patch = plan(later_run, "s.1", "bob@host", SERVER_TIME, force=True)
    assert (second.max_attempts, second.count, second.from_attempt) == (8, 2, 3)  # 3 + 5, not 3 + 7
    assert patch[("steps", "s.1", "redrive")]["previousMaxAttempts"] == 7


@pytest.mark.parametrize(
    ("status", "force", "refusal"),
    [
        (
            "RUNNING",
            False,
            "is RUNNING: a worker holds it; pass --force to take it back (its result will be discarded)",
        ),
        ("SUCCEEDED", False, "has SUCCEEDED; pass --force to run it again"),
        ("READY", True, "is already READY"),
        ("PENDING", True, "is PENDING"),
        ("CANCELLED", True, "is CANCELLED"),
        ("BOGUS", True, "has status 'BOGUS'"),
    ],
)
def test_a_step_in_another_status_is_refused_with_the_reason(status: str, force: bool, refusal: str) -> None:
    with pytest.raises(OperatorError) as raised:
        _plan({"s.1": step_data(status, attempt=1)}, force=force)
    assert raised.value.message.startswith(f"step 's.1' {refusal}") and raised.value.exit_code == 2
    forceable = status in ("RUNNING", "SUCCEEDED")
    assert raised.value.message.endswith("--force)") is not forceable  # the general rule only when --force cannot help


@pytest.mark.parametrize("status", ["RUNNING", "SUCCEEDED"])
def test_force_re_drives_a_running_or_succeeded_step(status: str) -> None:
    done, patch = _plan({"s.1": step_data(status, attempt=1, maxAttempts=2)}, force=True)
    assert (done.from_status, done.max_attempts, patch[("steps", "s.1", "status")]) == (status, 3, "READY")


def test_unknown_steps_other_types_and_cancelled_runs_are_refused() -> None:
    many = {f"s{i:02d}": step_data("FAILED") for i in range(12)}
    with pytest.raises(OperatorError, match=r"run 'r' has no step 'nope'; its steps: s00, .*, s09 \(and 2 more\)$"):
        _plan(many, "nope")
    with pytest.raises(OperatorError, match=r"its steps: \(none\)"):
        _plan({}, "nope")
    with pytest.raises(OperatorError, match="is of type 'APPROVAL': only LLM_REPORT"):
        _plan({"s.1": step_data("FAILED", type="APPROVAL")})
    with pytest.raises(OperatorError, match="run 'r' is CANCELLED"):
        _plan({"s.1": step_data("FAILED")}, status="CANCELLED")


def test_time_is_utc_in_every_timezone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/St_Johns")
    time.tzset()
    try:
        assert rfc3339(datetime(2026, 11, 22, 12, tzinfo=UTC)) == "2026-11-22T12:00:00Z"
        run = make_run({"s": step_data("RUNNING", startedAt=T0)})
        assert "2026-11-22T12:00:00Z" in table(run, step_rows(run, NOW), NOW)
    finally:
        monkeypatch.undo()
        time.tzset()


def test_a_re_drive_has_landed_when_the_step_shows_its_record() -> None:
    run = make_run({"s.1": step_data("FAILED", attempt=2, error=_error())}, run_id="r")
    done, patch = plan(run, "s.1", "alice@host", NOW)
    assert not landed(run, done)
    assert landed(apply_patch(run, patch), done)
    other, _ = plan(run, "s.1", "bob@host", NOW)
    assert not landed(apply_patch(run, patch), other)  # someone else's re-drive
    claimed = apply_patch(
        apply_patch(run, patch), {("steps", "s.1", "status"): "RUNNING", ("steps", "s.1", "attempt"): 3}
    )
    assert landed(claimed, done)  # an event claimed it before the re-read: still our re-drive
    assert not landed(make_run({}, run_id="r"), done)
