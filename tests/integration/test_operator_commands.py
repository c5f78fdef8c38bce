"""``python -m worker_llm_client status|logs|redrive`` as subprocesses against the real emulator.

Runs live in ``it-project`` (no trigger registered), so a re-drive's write wakes nothing here; the
``executor`` fixture then claims the re-driven step as an event would. ``gcloud`` is a fake put first
on PATH (it records its argv and prints canned entries): the real one is never called.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.builders import step_data
from tests.stacks import IT_PROJECT, ROOT
from worker_llm_client.models import run_from_document

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
RETRY_AT = datetime(2099, 1, 2, 3, 4, 5, tzinfo=UTC)  # never due: the executor leaves that step alone
SENTINEL = "SENTINEL-vars-never-printed"
ENTRIES = [
    {
        "timestamp": "2026-11-22T12:00:00.100Z",
        "severity": "INFO",
        "jsonPayload": {"message": "step.claimed", "runId": "r", "stepId": "s1", "attempt": 1},
    },
    {
        "timestamp": "2026-11-22T12:00:02.500Z",
        "severity": "WARNING",
        "jsonPayload": {"message": "step.failed", "stepId": "s1", "attempt": 1, "code": "LLM_TIMEOUT"},
    },
    {"timestamp": "2026-11-22T12:00:03Z", "jsonPayload": {"message": "event.ignored"}},
]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worker_llm_client", *args]
    return subprocess.run(command, cwd=ROOT, env=_env(env), capture_output=True, text=True, timeout=timeout)


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment (FIRESTORE_EMULATOR_HOST is set by the session fixture), on it-project."""
    return os.environ | {"GOOGLE_CLOUD_PROJECT": IT_PROJECT, "TZ": "Asia/Kolkata"} | (extra or {})


def _put(db: Any, run_id: str, steps: dict[str, Any], **fields: Any) -> Any:
    return _ref(db, run_id).set({"status": "RUNNING", "steps": steps, **fields}).update_time


def _ref(db: Any, run_id: str) -> Any:
    return db.collection("flow_runs").document(run_id)


def _report_step(status: str, **extra: Any) -> dict[str, Any]:
    variables = {"team": SENTINEL, "week": "2026-W47", "notes": ["shipped the operator commands"]}
    return step_data(status, prompt_id="weekly_report", profile="flash-json", vars=variables, **extra)


def _error(code: str = "LLM_UNAVAILABLE", attempt: int = 3) -> dict[str, Any]:
    return {"code": code, "message": "HTTP 503 from the model", "retryable": True, "attempt": attempt}


def _mixed_run(db: Any, run_id: str) -> None:
    usage = {"promptTokens": 900, "outputTokens": 334, "thoughtsTokens": 0, "cachedTokens": 0, "totalTokens": 1234}
    outputs = {"gcs_uri": f"gs://test-artifacts/flow_runs/{run_id}/digest/f.json", "usage": usage, "costUsd": 0.0042}
    steps = {
        "digest": _report_step("SUCCEEDED", attempt=1, startedAt=T0, finishedAt=T0 + timedelta(seconds=7.25),
                               outputs=outputs),
        "weekly.v2": _report_step("FAILED", attempt=3, startedAt=T0, finishedAt=T0 + timedelta(seconds=95),
                                  error=_error()),
        "retrying": _report_step("RETRY_WAIT", attempt=1, maxAttempts=4, retryAt=RETRY_AT,
                                 error=_error("LLM_RATE_LIMITED", attempt=1)),
        "approval": step_data("PENDING", type="HUMAN_APPROVAL"),
    }  # fmt: skip
    _put(db, run_id, steps)


# --- status -----------------------------------------------------------------------------------------


def test_status_prints_every_step_as_a_table_in_utc(db: Any, run_id: str) -> None:
    _mixed_run(db, run_id)
    done = cli("status", run_id)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"run {run_id}  status RUNNING  wakeAt —  as of ")
    assert lines[1].split()[:4] == ["STEP", "TYPE", "STATUS", "ATTEMPT"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert list(rows) == ["approval", "digest", "retrying", "weekly.v2"]
    assert rows["weekly.v2"].split()[:7] == [
        "weekly.v2", "LLM_REPORT", "FAILED", "3/3", "2026-11-22T12:00:00Z", "2026-11-22T12:01:35Z", "1m35s",
    ]  # fmt: skip
    assert "LLM_UNAVAILABLE: HTTP 503 from the model" in rows["weekly.v2"]
    assert rows["digest"].split()[6:10] == ["7.2s", "—", "1234", "$0.004200"]
    assert rows["digest"].endswith(f"gs://test-artifacts/flow_runs/{run_id}/digest/f.json")
    assert "1/4" in rows["retrying"] and "2099-01-02T03:04:05Z" in rows["retrying"]
    assert rows["approval"].split()[:4] == ["approval", "HUMAN_APPROVAL", "PENDING", "—"]
    assert SENTINEL not in done.stdout


def test_status_json_is_one_document_with_rfc3339_timestamps(db: Any, run_id: str) -> None:
    _mixed_run(db, run_id)
    done = cli("status", run_id, "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["runId"] == run_id and document["status"] == "RUNNING"
    steps = {step["id"]: step for step in document["steps"]}
    assert steps["weekly.v2"] | {"startedAt": "2026-11-22T12:00:00Z"} == steps["weekly.v2"]
    assert steps["weekly.v2"]["finishedAt"] == "2026-11-22T12:01:35Z" and steps["weekly.v2"]["error"] == _error()
    assert (steps["weekly.v2"]["attempt"], steps["weekly.v2"]["maxAttempts"]) == (3, 3)
    assert steps["digest"]["durationSeconds"] == 7.25 and steps["digest"]["costUsd"] == 0.0042
    assert steps["digest"]["tokens"] == {"total": 1234, "prompt": 900, "output": 334}
    assert steps["retrying"]["retryAt"] == "2099-01-02T03:04:05Z" and steps["approval"]["maxAttempts"] is None
    assert SENTINEL not in done.stdout


def test_an_unknown_run_is_bad_input(firestore_emulator: Any, run_id: str) -> None:
    for args in (("status", run_id), ("status", run_id, "--json"), ("redrive", run_id, "s1")):
        done = cli(*args)
        assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: run '{run_id}' does not exist\n")
    done = cli("status", "a/b")
    assert done.returncode == 2 and "'a/b' is not a run id" in done.stderr


def test_watch_refreshes_until_nothing_runs(db: Any, run_id: str) -> None:
    _put(db, run_id, {"s1": _report_step("RUNNING", attempt=1, startedAt=T0)})
    with _watching(run_id, "--interval", "0.2", "--timeout", "20") as watcher:
        first = _read_until(watcher, lambda text: "LLM_REPORT" in text)
        _ref(db, run_id).update({"steps.s1.status": "SUCCEEDED", "steps.s1.finishedAt": T0 + timedelta(seconds=3)})
        out, err = _rest(watcher)
    assert watcher.returncode == 0, err
    frames = (first + out).strip().split("\n\n")
    assert len(frames) >= 2 and all(frame.startswith(f"run {run_id}") for frame in frames)
    assert frames[0].splitlines()[-1].split()[2] == "RUNNING"
    assert frames[-1].splitlines()[-1].split()[2:7:4] == ["SUCCEEDED", "3.0s"]


def test_watch_gives_up_after_its_timeout_and_json_prints_one_line_per_refresh(db: Any, run_id: str) -> None:
    _put(db, run_id, {"s1": _report_step("RUNNING", attempt=1, startedAt=T0)})
    done = cli("status", run_id, "--watch", "--json", "--interval", "0.2", "--timeout", "0.5")
    assert done.returncode == 1 and "still has steps running or ready after 0.5 s" in done.stderr
    frames = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(frames) >= 2 and {frame["steps"][0]["status"] for frame in frames} == {"RUNNING"}


def test_ctrl_c_stops_a_watch_cleanly(db: Any, run_id: str) -> None:
    _put(db, run_id, {"s1": _report_step("READY")})
    with _watching(run_id, "--interval", "0.3", "--timeout", "20") as watcher:
        _read_until(watcher, lambda text: "READY" in text)
        watcher.send_signal(signal.SIGINT)
        _, err = _rest(watcher)
    assert (watcher.returncode, err) == (130, "interrupted\n")


def _watching(run_id: str, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "worker_llm_client", "status", run_id, "--watch", *args]
    return subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _rest(process: subprocess.Popen[str]) -> tuple[str, str]:
    """What is left of stdout and stderr once the process ends (read through the same buffers as readline)."""
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    process.wait(timeout=30)
    return out, err


def _read_until(process: subprocess.Popen[str], seen: Callable[[str], bool]) -> str:
    assert process.stdout is not None
    text = ""
    while not seen(text):
        line = process.stdout.readline()
        assert line, f"the watch ended early: {text}"
        text += line
    return text


# --- redrive ----------------------------------------------------------------------------------------


def test_redrive_gives_a_failed_step_a_fresh_budget_and_the_executor_runs_it(
    db: Any, executor: Any, stub: Any, run_id: str
) -> None:
    _mixed_run(db, run_id)
    done = cli("redrive", run_id, "weekly.v2", "--by", "alice@ops")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"flow_runs/{run_id} steps.weekly.v2 FAILED (attempt 3) -> READY; maxAttempts 6; re-drive #1 by alice@ops\n"
    )
    snap = _ref(db, run_id).get()
    data = snap.to_dict()
    step = data["steps"]["weekly.v2"]
    assert {"error", "finishedAt", "outputs", "retryAt"} & set(step) == set()
    assert (step["status"], step["attempt"], step["maxAttempts"]) == ("READY", 3, 6)
    redrive = step["redrive"]
    assert isinstance(redrive.pop("at"), datetime) and isinstance(data["executor"]["wakeAt"], datetime)
    assert redrive == {
        "by": "alice@ops",
        "fromStatus": "FAILED",
        "fromAttempt": 3,
        "previousError": _error(),
        "previousMaxAttempts": None,
        "budget": 3,
        "count": 1,
    }
    assert data["steps"]["digest"]["status"] == "SUCCEEDED"  # the other steps are untouched

    [report] = executor.handle(run_from_document(run_id, data, snap.update_time))
    step = _ref(db, run_id).get().to_dict()["steps"]["weekly.v2"]
    assert (report.status, step["status"], step["attempt"]) == ("SUCCEEDED", "SUCCEEDED", 4)
    assert step["redrive"]["count"] == 1 and step["outputs"]["llmCalls"] == 1


def test_redrive_of_a_retry_wait_step_keeps_its_own_budget_and_names_the_operator(db: Any, run_id: str) -> None:
    _mixed_run(db, run_id)
    done = cli("redrive", run_id, "retrying", env={"USER": "carol", "LOGNAME": "carol"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"flow_runs/{run_id} steps.retrying RETRY_WAIT (attempt 1) -> READY; maxAttempts 5;")
    assert " re-drive #1 by carol@" in done.stdout
    step = _ref(db, run_id).get().to_dict()["steps"]["retrying"]
    assert (step["maxAttempts"], step["redrive"]["previousMaxAttempts"], step["redrive"]["by"][:6]) == (5, 4, "carol@")


def test_redrive_refuses_what_it_should_not_touch_and_writes_nothing(db: Any, run_id: str) -> None:
    steps = {
        "ok": _report_step("SUCCEEDED", attempt=1),
        "busy": _report_step("RUNNING", attempt=1),
        "queued": _report_step("READY"),
        "gate": step_data("FAILED", type="HUMAN_APPROVAL"),
    } | {f"x{i:02d}": _report_step("PENDING") for i in range(10)}
    written = _put(db, run_id, steps)
    refusals = {
        ("ok",): "step 'ok' has SUCCEEDED; pass --force",
        ("busy",): "step 'busy' is RUNNING: a worker holds it; pass --force",
        ("queued", "--force"): "step 'queued' is already READY",
        ("x00", "--force"): "step 'x00' is PENDING",
        ("gate", "--force"): "step 'gate' is of type 'HUMAN_APPROVAL': only LLM_REPORT steps",
        ("nope",): f"run '{run_id}' has no step 'nope'; its steps: busy, gate, ok, queued, x00, x01, x02, x03, x04, "
        "x05 (and 4 more)",
    }
    for args, message in refusals.items():
        done = cli("redrive", run_id, *args)
        assert (done.returncode, done.stdout) == (2, ""), (args, done.stderr)
        assert done.stderr.startswith(f"error: {message}"), done.stderr
    assert _ref(db, run_id).get().update_time == written

    forced = cli("redrive", run_id, "ok", "--force", "--by", "dave")
    assert forced.returncode == 0, forced.stderr
    assert "SUCCEEDED (attempt 1) -> READY; maxAttempts 4; re-drive #1 by dave" in forced.stdout


def test_a_second_redrive_counts_and_grants_the_steps_own_budget_again(db: Any, run_id: str) -> None:
    _put(db, run_id, {"s.1": _report_step("FAILED", attempt=2, maxAttempts=2, error=_error(attempt=2))})
    assert cli("redrive", run_id, "s.1", "--by", "a").returncode == 0
    _ref(db, run_id).update({"steps.`s.1`.status": "FAILED", "steps.`s.1`.attempt": 4, "steps.`s.1`.error": _error()})
    done = cli("redrive", run_id, "s.1", "--by", "b")
    assert done.stdout.endswith("FAILED (attempt 4) -> READY; maxAttempts 6; re-drive #2 by b\n"), done.stderr
    step = _ref(db, run_id).get().to_dict()["steps"]["s.1"]
    assert (step["redrive"]["previousMaxAttempts"], step["redrive"]["budget"], step["redrive"]["by"]) == (4, 2, "b")


class _Meddling:
    """The real client, but each read of the run is followed by another writer's update (``times``
    reads); with ``lose_answer`` the first write lands and then fails as a retried write would."""

    def __init__(self, db: Any, change: Callable[[Any], None], times: int, lose_answer: bool = False) -> None:
        self.db, self.change, self.times, self.lose_answer = db, change, times, lose_answer

    def write_option(self, **kwargs: Any) -> Any:
        return self.db.write_option(**kwargs)

    def collection(self, name: str) -> Any:
        return self

    def document(self, run_id: str) -> Any:
        ref = self.db.collection("flow_runs").document(run_id)
        meddler = self

        class Ref:
            def get(self, **kwargs: Any) -> Any:
                snap = ref.get(**kwargs)
                if meddler.times > 0:
                    meddler.times -= 1
                    meddler.change(ref)
                return snap

            def update(self, *args: Any, **kwargs: Any) -> Any:
                written = ref.update(*args, **kwargs)
                if meddler.lose_answer:
                    from google.api_core.exceptions import FailedPrecondition

                    meddler.lose_answer = False
                    raise FailedPrecondition("the retry of a write that had landed")
                return written

        return Ref()


def test_redrive_decides_again_on_the_run_as_another_writer_left_it(db: Any, run_id: str) -> None:
    from worker_llm_client.operations import OperatorError
    from worker_llm_client.operations.redrive import redrive

    _put(db, run_id, {"s1": _report_step("FAILED", attempt=1, error=_error(attempt=1)), "s2": _report_step("READY")})
    claimed = _Meddling(db, lambda ref: ref.update({"steps.s2.status": "RUNNING"}), times=1)
    done = redrive(claimed, run_id, "s1", "op")
    assert (done.count, _ref(db, run_id).get().to_dict()["steps"]["s1"]["status"]) == (1, "READY")

    _put(db, run_id, {"s1": _report_step("FAILED", attempt=1, error=_error(attempt=1))})
    raced = _Meddling(db, lambda ref: ref.update({"steps.s1.status": "SUCCEEDED"}), times=1)
    with pytest.raises(OperatorError, match="step 's1' has SUCCEEDED; pass --force"):
        redrive(raced, run_id, "s1", "op")

    _put(db, run_id, {"s1": _report_step("FAILED", attempt=1, error=_error(attempt=1))})
    busy = _Meddling(db, lambda ref: ref.update({"touched": time.time()}), times=10)
    with pytest.raises(OperatorError, match="the run changed while re-driving; try again") as raised:
        redrive(busy, run_id, "s1", "op")
    assert raised.value.exit_code == 1 and _ref(db, run_id).get().to_dict()["steps"]["s1"]["status"] == "FAILED"


def test_a_redrive_whose_write_landed_before_it_failed_counts_as_done(db: Any, run_id: str) -> None:
    from worker_llm_client.operations.redrive import redrive

    _put(db, run_id, {"s1": _report_step("FAILED", attempt=1, error=_error(attempt=1))})
    done = redrive(_Meddling(db, lambda ref: None, times=0, lose_answer=True), run_id, "s1", "op")
    step = _ref(db, run_id).get().to_dict()["steps"]["s1"]
    assert (done.count, step["status"], step["redrive"]["count"], step["maxAttempts"]) == (1, "READY", 1, 4)


# --- logs -------------------------------------------------------------------------------------------


@pytest.fixture
def fake_gcloud(tmp_path: Path) -> Callable[..., dict[str, str]]:
    """A ``gcloud`` first on PATH; returns the environment to run with. It records its argv in ``argv.json``."""

    def install(answer: str = json.dumps(ENTRIES), exit_code: int = 0, stderr: str = "") -> dict[str, str]:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        script = bin_dir / "gcloud"
        script.write_text(
            textwrap.dedent(f"""\
                #!{sys.executable}
                import json, sys
                open({str(tmp_path / "argv.json")!r}, "w").write(json.dumps(sys.argv[1:]))
                sys.stdout.write({answer!r})
                sys.stderr.write({stderr!r})
                sys.exit({exit_code})
            """)
        )
        script.chmod(0o755)
        return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}

    return install


def test_logs_prints_the_query_then_the_lines_in_order(
    fake_gcloud: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    done = cli("logs", "run-7", "--step", "s1", env=fake_gcloud())
    assert done.returncode == 0, done.stderr
    query = 'jsonPayload.runId="run-7" AND jsonPayload.stepId="s1"'
    assert json.loads((tmp_path / "argv.json").read_text()) == [
        "logging", "read", query, f"--project={IT_PROJECT}", "--order=asc", "--format=json", "--freshness=30d",
    ]  # fmt: skip
    assert done.stdout.splitlines() == [
        f"# Cloud Logging filter: {query}",
        f"gcloud logging read '{query}' --project={IT_PROJECT} --order=asc --format=json --freshness=30d",
        "2026-11-22T12:00:00.100Z  INFO      step.claimed  stepId=s1 attempt=1",
        "2026-11-22T12:00:02.500Z  WARNING   step.failed  stepId=s1 attempt=1 code=LLM_TIMEOUT",
        "2026-11-22T12:00:03Z  DEFAULT   event.ignored",
        "# 3 log entries",
    ]


def test_logs_quotes_ids_and_reports_a_failing_gcloud(
    fake_gcloud: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    env = fake_gcloud(answer="", exit_code=1, stderr="\nERROR: (gcloud.logging.read) PERMISSION_DENIED: nope\nmore\n")
    done = cli("logs", 'r"1\\x', "--project", "other-project", env=env)
    assert done.returncode == 1
    assert done.stderr == "error: gcloud failed: ERROR: (gcloud.logging.read) PERMISSION_DENIED: nope\n"
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[2:4] == ['jsonPayload.runId="r\\"1\\\\x"', "--project=other-project"]

    done = cli("logs", "r1", env=fake_gcloud(answer="not json"))
    assert (done.returncode, done.stderr) == (1, "error: gcloud's answer is not JSON\n")


def test_logs_without_gcloud_or_with_query_only_prints_the_query_alone(
    fake_gcloud: Callable[..., dict[str, str]], tmp_path: Path
) -> None:
    done = cli("logs", "r1", "--query-only", env=fake_gcloud())
    assert done.returncode == 0 and len(done.stdout.splitlines()) == 2 and not (tmp_path / "argv.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    done = cli("logs", "r1", env={"PATH": str(empty)})
    assert done.returncode == 0 and done.stdout.splitlines()[0] == '# Cloud Logging filter: jsonPayload.runId="r1"'
    assert done.stderr == "gcloud is not on PATH: run the command above where it is\n"
    done = cli("logs", "r1", env={"PATH": str(empty), "GOOGLE_CLOUD_PROJECT": ""})
    assert (done.returncode, done.stderr) == (2, "error: GOOGLE_CLOUD_PROJECT is not set; set it or pass --project\n")
