"""``cleanup``'s decision over fake listings, and the sweep that applies it (fake reads and deletes)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pytest

from tests.builders import T0, make_run, step_data
from worker_llm_client import cli
from worker_llm_client.core.artifact_naming import SEGMENT_MAX, artifact_object_name, debug_object_name
from worker_llm_client.models import RunSnapshot
from worker_llm_client.operations import OperatorError
from worker_llm_client.operations.cleanup import (
    CHANGED,
    DEFAULT_DAYS,
    GONE,
    PREFIX,
    RUNS_PER_READ,
    Decision,
    Listed,
    Policy,
    decide_all,
    format_age,
    parse_name,
    run_id_of,
    run_ids,
    sweep,
)

BUCKET = "b"
NOW = T0 + timedelta(days=100)
POLICY = Policy(BUCKET, NOW, 7.0)
FP, OTHER = "a" * 64, "b" * 64
LONG_RUN = "r" * (SEGMENT_MAX + 5)


def _name(run_id: str = "run-1", step_id: str = "s1", fingerprint: str = FP) -> str:
    return artifact_object_name(run_id, step_id, fingerprint)


def _uri(name: str) -> str:
    return f"gs://{BUCKET}/{name}"


def _obj(name: str, days_old: float = 30, generation: int = 1, hint: str | None = None) -> Listed:
    return Listed(name, generation, 100, NOW - timedelta(days=days_old), hint)


def _done(fingerprint: str = FP, step_id: str = "s1", run_id: str = "run-1") -> dict[str, Any]:
    return step_data("SUCCEEDED", attempt=1, outputs={"gcs_uri": _uri(_name(run_id, step_id, fingerprint))})


def _one(listed: Listed, run: RunSnapshot | None, run_id: str = "run-1", policy: Policy = POLICY) -> Decision:
    [decision] = decide_all([listed], {run_id: run}, policy)
    return decision


# --- names ----------------------------------------------------------------------------------------


def test_only_report_and_rejected_reply_names_are_recognised() -> None:
    assert parse_name(_name()) is not None and parse_name(_name()).invalid is False  # type: ignore[union-attr]
    assert parse_name(debug_object_name(_name(), 3)).invalid is True  # type: ignore[union-attr]
    for name in (
        "flow_runs/run-1/s1/notes.txt",
        f"flow_runs/run-1/s1/{FP.upper()}.json",
        f"flow_runs/run-1/s1/x/{FP}.json",
        f"flow_runs/run-1/{FP}.json",
        f"flow_runs//s1/{FP}.json",
        f"other/run-1/s1/{FP}.json",
        f"flow_runs/run-1/s1/{FP}.attempt-x.invalid.json",
    ):
        assert parse_name(name) is None, name


@pytest.mark.parametrize(
    "run_id", ["run-1", "ü x", "a~b", "%41", "a.b", "r" * SEGMENT_MAX, "run:42?&=+", "__x"], ids=repr
)
def test_a_run_id_is_recovered_from_its_segment(run_id: str) -> None:
    segment = _name(run_id).split("/")[1]
    assert run_id_of(segment) == run_id


def test_a_segment_that_names_no_firestore_document_is_not_recovered() -> None:
    for run_id in ("a/b", ".", "..", "__reserved__", "\ud800", "x" * 1501):
        assert run_id_of(_name(run_id).split("/")[1]) is None, run_id
    assert run_id_of("a%41") is None  # un-quotes to "aA", which the executor writes as "aA"
    assert run_id_of("%zz") is None and run_id_of("a%2Fb") is None


def test_a_cut_segment_is_named_only_by_metadata_of_the_same_segment() -> None:
    segment = _name(LONG_RUN).split("/")[1]
    assert len(segment) > SEGMENT_MAX and "~" in segment
    assert run_id_of(segment) is None
    assert run_id_of(segment, hint=LONG_RUN) == LONG_RUN
    assert run_id_of(segment, hint=LONG_RUN + "x") is None  # another id's hash
    assert run_id_of("run-1", hint="run-2") == "run-1"  # an un-quotable segment is its own authority


# --- the decision ---------------------------------------------------------------------------------


def test_a_referenced_report_is_kept_whatever_its_age() -> None:
    decision = _one(_obj(_name(), days_old=400), make_run({"s1": _done()}))
    assert (decision.delete, decision.kind, decision.reason) == (False, "referenced", "referenced by step s1")


def test_an_unreferenced_report_is_kept_within_the_grace_period_and_deleted_after_it() -> None:
    run = make_run({"s1": _done(OTHER)})
    young = _one(_obj(_name(), days_old=6.9), run)
    assert (young.delete, young.kind, young.reason) == (False, "within the grace period", "written within the last 7d")
    old = _one(_obj(_name(), days_old=12), run)
    assert old.delete and old.line("would delete") == (
        f"would delete {_uri(_name())}  (age 12d, unreferenced: step s1 points at {_uri(_name(fingerprint=OTHER))})"
    )
    assert _one(_obj(_name()), run, policy=Policy(BUCKET, NOW, 0)).delete
    assert not _one(_obj(_name()), run, policy=Policy(BUCKET, NOW, 31)).delete


def test_the_reason_says_why_a_report_is_unreferenced() -> None:
    cancelled = make_run({"s1": step_data("CANCELLED", attempt=1), "s2": step_data("FAILED", attempt=3)})
    assert _one(_obj(_name()), cancelled).reason == "unreferenced: step s1 is CANCELLED with no outputs.gcs_uri"
    assert (
        _one(_obj(_name(step_id="s2")), cancelled).reason == "unreferenced: step s2 is FAILED with no outputs.gcs_uri"
    )
    no_step = _one(_obj(_name(step_id="gone")), cancelled)
    assert no_step.delete and no_step.reason == "unreferenced: run run-1 has no step of segment gone"


def test_the_reports_of_a_run_that_no_longer_exists_go_after_the_grace_period() -> None:
    gone = _one(_obj(_name(), days_old=8), None)
    assert (gone.delete, gone.reason) == (True, "run run-1 no longer exists")
    assert not _one(_obj(_name(), days_old=1), None).delete


@pytest.mark.parametrize("status", ["RUNNING", "READY", "RETRY_WAIT", "PENDING", "", "PAUSED"])
def test_the_reports_of_a_step_not_finished_are_kept_whatever_their_age(status: str) -> None:
    run = make_run({"s1": step_data(status, attempt=2, claim={"token": "t"})})
    decision = _one(_obj(_name(), days_old=400), run)
    assert (decision.delete, decision.kind) == (False, "step not finished")
    assert decision.reason == f"step s1 is {status or 'without status'}: it may write or reuse it"


def test_a_running_step_keeps_its_reports_even_in_a_cancelled_run() -> None:
    run = make_run({"s1": step_data("RUNNING", attempt=1)}, status="CANCELLED")
    assert not _one(_obj(_name()), run).delete


def test_an_address_anywhere_in_the_run_document_is_a_reference() -> None:
    steps = {"s1": step_data("CANCELLED"), "digest": step_data("SUCCEEDED", vars={"sources": [_uri(_name())]})}
    decision = _one(_obj(_name()), make_run(steps))
    assert decision.reason == "referenced by the run document at steps.digest.inputs.vars.sources.0"


def test_rejected_replies_are_left_to_the_lifecycle_rule_unless_included() -> None:
    invalid = debug_object_name(_name(), 2)
    run = make_run({"s1": step_data("FAILED", attempt=2)})
    kept = _one(_obj(invalid, days_old=400), run)
    assert (kept.delete, kept.kind) == (False, "rejected replies (lifecycle rule)")
    assert not _one(_obj(invalid, days_old=400), None).delete
    included = Policy(BUCKET, NOW, 7.0, include_invalid=True)
    assert _one(_obj(invalid), run, policy=included).delete
    assert not _one(_obj(invalid, days_old=1), run, policy=included).delete
    error = {"code": "OUTPUT_NOT_JSON", "message": f"not JSON; the rejected replies are kept at {_uri(invalid)}."}
    cited = make_run({"s1": step_data("FAILED", attempt=2, error=error)})
    decision = _one(_obj(invalid), cited, policy=included)
    assert (decision.delete, decision.reason) == (False, "referenced by the run document at steps.s1.error.message")


def test_objects_that_cannot_be_attributed_are_kept_and_said_so() -> None:
    cut = _name(LONG_RUN)
    unattributed = _one(_obj(cut), None, run_id="unused")
    assert (unattributed.delete, unattributed.kind) == (False, "run id not recoverable")
    assert run_ids([_obj(cut)]) == []
    attributed = _obj(cut, hint=LONG_RUN)
    assert run_ids([attributed]) == [LONG_RUN]
    assert _one(attributed, None, run_id=LONG_RUN).delete
    assert not _one(attributed, make_run({"s1": _done(run_id=LONG_RUN)}, run_id=LONG_RUN), run_id=LONG_RUN).delete
    foreign = _one(_obj("flow_runs/run-1/s1/notes.txt"), None)
    assert (foreign.delete, foreign.kind) == (False, "not a report name")


def test_an_object_without_a_time_is_never_old_enough() -> None:
    decision = decide_all([Listed(_name(), 1, 10, None)], {"run-1": None}, POLICY)[0]
    assert (
        not decision.delete and decision.age is None and decision.line("kept").endswith("(written within the last 7d)")
    )


def test_a_run_the_caller_did_not_read_is_a_bug_not_a_deletion() -> None:
    with pytest.raises(KeyError):
        decide_all([_obj(_name())], {}, POLICY)


def test_ages_read_in_days_hours_or_minutes() -> None:
    assert [format_age(timedelta(seconds=s)) for s in (59, 3599, 3600, 86399, 86400, 86400 * 12.9)] == [
        "0m", "59m", "1h", "23h", "1d", "12d",
    ]  # fmt: skip


# --- the sweep ------------------------------------------------------------------------------------


class _Fakes:
    def __init__(self, runs: Mapping[str, RunSnapshot], outcomes: Mapping[str, str | Exception] | None = None) -> None:
        self.runs, self.outcomes = runs, outcomes or {}
        self.reads: list[list[str]] = []
        self.deleted: list[tuple[str, int]] = []
        self.lines: list[str] = []

    def read(self, ids: list[str]) -> dict[str, RunSnapshot | None]:
        self.reads.append(ids)
        return {run_id: self.runs.get(run_id) for run_id in ids}

    def delete(self, listed: Listed) -> str:
        outcome = self.outcomes.get(listed.name, "deleted")
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "deleted":
            self.deleted.append((listed.name, listed.generation))
        return outcome


def _listing() -> list[Listed]:
    return [
        _obj(_name(), generation=11),  # referenced
        _obj(_name(fingerprint=OTHER), generation=12),  # orphan
        _obj(debug_object_name(_name(), 1)),  # rejected replies
        _obj(_name("run-2", "s1"), generation=21),  # run gone
        _obj(_name(LONG_RUN)),  # cut, no metadata
    ]


def test_a_dry_run_lists_what_it_would_delete_and_deletes_nothing() -> None:
    fakes = _Fakes({"run-1": make_run({"s1": _done()})})
    summary = sweep(_listing(), fakes.read, POLICY, None, fakes.lines.append)
    assert fakes.reads == [["run-1", "run-2"]] and fakes.deleted == []
    assert fakes.lines == [
        f"would delete {_uri(_name(fingerprint=OTHER))}  (age 30d, unreferenced: step s1 points at {_uri(_name())})",
        f"would delete {_uri(_name('run-2'))}  (age 30d, run run-2 no longer exists)",
        f"kept {_uri(_name(LONG_RUN))}  (age 30d, run id not recoverable from the object name (nor its runId metadata))",
    ]
    assert summary.line(dry_run=True) == (
        "scanned 5 objects in 3 runs; would delete 2 (200 bytes); kept 3 "
        "(1 referenced, 1 rejected replies (lifecycle rule), 1 run id not recoverable)"
    )


def test_delete_is_conditional_on_the_listed_generation_and_reports_what_changed() -> None:
    outcomes: dict[str, str | Exception] = {_name("run-2"): CHANGED}
    fakes = _Fakes({"run-1": make_run({"s1": _done()})}, outcomes)
    summary = sweep(_listing(), fakes.read, POLICY, fakes.delete, fakes.lines.append, verbose=True)
    assert fakes.deleted == [(_name(fingerprint=OTHER), 12)]
    assert fakes.lines[1].startswith(f"deleted {_uri(_name(fingerprint=OTHER))}  (age 30d, unreferenced")
    assert f"kept {_uri(_name('run-2'))}  (age 30d, changed since listed)" in fakes.lines
    assert fakes.lines[0] == f"kept {_uri(_name())}  (age 30d, referenced by step s1)"  # --verbose
    assert (summary.deleted, summary.kept[CHANGED], summary.failure) == (1, 1, None)
    assert summary.line(dry_run=False).startswith("scanned 5 objects in 3 runs; deleted 1 (100 bytes); kept 4")


def test_an_object_already_gone_is_kept_in_the_count_and_a_failure_stops_the_sweep() -> None:
    outcomes: dict[str, str | Exception] = {
        _name(fingerprint=OTHER): GONE,
        _name("run-2"): OperatorError("deleting gs://b/x failed: 503", exit_code=1),
    }
    fakes = _Fakes({"run-1": make_run({"s1": _done()})}, outcomes)
    summary = sweep([*_listing(), _obj(_name("run-3"))], fakes.read, POLICY, fakes.delete, fakes.lines.append)
    assert (summary.kept[GONE], summary.deleted, summary.failure) == (1, 0, "deleting gs://b/x failed: 503")
    assert not any("run-3" in line for line in fakes.lines)


def test_runs_are_read_in_batches_and_the_limit_stops_the_listing() -> None:
    listing = [_obj(_name(f"run-{i:03d}")) for i in range(RUNS_PER_READ + 5)]
    fakes = _Fakes({})
    summary = sweep(listing, fakes.read, POLICY, fakes.delete, fakes.lines.append)
    assert [len(ids) for ids in fakes.reads] == [RUNS_PER_READ, 5]
    assert (summary.scanned, summary.runs, summary.deleted, summary.truncated) == (105, 105, 105, False)
    limited = sweep(listing, _Fakes({}).read, POLICY, None, [].append, limit=3)
    assert (limited.scanned, limited.truncated) == (3, True)
    assert limited.line(dry_run=True) == (
        "scanned 3 objects in 3 runs; would delete 3 (300 bytes); kept 0; stopped at --limit, more objects remain"
    )


def test_nothing_to_attribute_reads_nothing() -> None:
    fakes = _Fakes({})
    summary = sweep([_obj("flow_runs/x/notes.txt")], fakes.read, POLICY, None, fakes.lines.append)
    assert fakes.reads == [] and summary.line(dry_run=True) == (
        "scanned 1 objects in 1 run; would delete 0 (0 bytes); kept 1 (1 not a report name)"
    )


# --- the command line -----------------------------------------------------------------------------


def test_the_command_line_defaults_are_the_modules() -> None:
    args = cli.build_parser().parse_args(["cleanup"])
    assert (args.prefix, args.older_than, args.delete, args.limit, args.now) == (
        PREFIX,
        DEFAULT_DAYS,
        False,
        None,
        None,
    )
    args = cli.build_parser().parse_args(["cleanup", "--older-than", "0", "--now", "2026-11-22T12:00:00"])
    assert (args.older_than, args.now) == (0.0, T0)


@pytest.mark.parametrize(
    "argv",
    [["--older-than", "-1"], ["--older-than", "nan"], ["--older-than", "inf"], ["--older-than", "x"],
     ["--limit", "0"], ["--limit", "-3"], ["--now", "yesterday"]],
)  # fmt: skip
def test_bad_input_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.build_parser().parse_args(["cleanup", *argv])
    assert exited.value.code == 2 and "error: argument" in capsys.readouterr().err
