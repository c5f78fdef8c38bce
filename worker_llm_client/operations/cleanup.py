"""``cleanup``: delete the report objects no run refers to, once they are older than a grace period.

A report nobody refers to is left behind when a step is cancelled (or its run changed) while its
model call was in flight: the report is written, the finalize is refused. ``cleanup`` lists
``flow_runs/`` in the artifacts bucket, reads each run once (``get_all``, 100 runs a call) and
decides per object (``decide_all``, pure):

- kept: a name that is not ``flow_runs/{run}/{step}/{64 hex}.json`` (or ``.attempt-N.invalid.json``);
- kept: a run segment that names no run: cut (``~hash``) with no ``runId`` metadata of the same
  segment, or not what ``core/artifact_naming.py`` would write for its un-quoted id;
- kept: rejected replies (``.invalid.json``): the bucket's lifecycle rule removes them, unless
  ``--include-invalid``;
- kept: a ``gs://`` address of the object appears anywhere in the run document (a step's
  ``outputs.gcs_uri``, an error message, an orchestrator's own field);
- kept: its step is not finished (PENDING, READY, RETRY_WAIT, RUNNING, or a status we do not
  know): a RUNNING step may be writing it, and a claim reuses an existing report of an identical
  request instead of calling the model;
- kept: written less than the grace period ago (the object's ``updated``, else ``timeCreated``);
- else deleted: the run has no such step, the step points at another report or has none, or the
  run document no longer exists.

Dry run unless ``--delete``; a deletion is conditional on the generation listed, so an object
rewritten since it was listed is kept. Runs are read and their objects deleted one batch at a time,
keeping the time between a run's read and its objects' deletion short. Object contents are never
read or printed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from worker_llm_client.core.artifact_naming import SEGMENT_MAX, segment
from worker_llm_client.core.step_inputs import FIRESTORE_ID_MAX_BYTES
from worker_llm_client.models import RUNS, RunSnapshot, Step, run_from_document
from worker_llm_client.models import StepStatus as S
from worker_llm_client.operations import OperatorError, rfc3339
from worker_llm_client.operations.store import call_options, firestore_errors, run_ref

PREFIX = f"{RUNS}/"
DEFAULT_DAYS = 7.0
RUNS_PER_READ = 100  # run documents per get_all; also the batch whose objects are deleted before the next read
PAGE_SIZE = 1000
GCS_CALL_SECONDS = 30.0
GCS_RETRY_SECONDS = 60.0  # transient GCS errors are retried this long, then the command fails
FINISHED = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED})
_REPORT = re.compile(r"[0-9a-f]{64}\.json")
_INVALID = re.compile(r"[0-9a-f]{64}\.attempt-[0-9]+\.invalid\.json")
_GS_URI = re.compile(r"gs://[^\s\"'<>]+")
_URI_TAIL = ".,;:)]}"  # punctuation a message may put right after an address

# why an object is kept (the summary counts them); NOTABLE ones are printed even without --verbose
REFERENCED = "referenced"
ACTIVE = "step not finished"
YOUNG = "within the grace period"
INVALID = "rejected replies (lifecycle rule)"
UNATTRIBUTED = "run id not recoverable"
FOREIGN = "not a report name"
CHANGED = "changed since listed"
GONE = "already gone"
NOTABLE = frozenset({UNATTRIBUTED, FOREIGN, CHANGED, GONE})


@dataclass(frozen=True)
class Listed:
    """One object as listed: what the decision and a conditional delete need."""

    name: str
    generation: int
    size: int
    updated: datetime | None  # last written (``updated``, else ``timeCreated``); None: never old enough
    run_id_hint: str | None = None  # the object's ``runId`` metadata: names the run of a cut segment


@dataclass(frozen=True)
class Policy:
    bucket: str
    now: datetime
    days: float
    include_invalid: bool = False

    @property
    def cutoff(self) -> datetime:
        """Objects last written before this are old enough to delete."""
        return self.now - timedelta(days=self.days)


@dataclass(frozen=True)
class Decision:
    listed: Listed
    uri: str
    delete: bool
    kind: str  # why it is kept (one of the constants above), or "" when it is deleted
    reason: str
    age: timedelta | None

    def line(self, verb: str) -> str:
        """``would delete gs://…  (age 12d, unreferenced: …)``; ``kept gs://…  (…)``."""
        age = f"age {format_age(self.age)}, " if self.age is not None else ""
        return f"{verb} {self.uri}  ({age}{self.reason})"


@dataclass
class Summary:
    scanned: int = 0
    runs: int = 0
    deleted: int = 0
    deleted_bytes: int = 0
    kept: Counter[str] = field(default_factory=Counter)
    truncated: bool = False  # --limit stopped the listing
    failure: str | None = None  # a deletion failed: the command stopped there

    def line(self, dry_run: bool) -> str:
        verb = "would delete" if dry_run else "deleted"
        kept = sum(self.kept.values())
        ranked = sorted(self.kept.items(), key=lambda kv: (-kv[1], kv[0]))  # most first, then by name
        detail = ", ".join(f"{count} {kind}" for kind, count in ranked)
        runs = f"{self.runs} run{'' if self.runs == 1 else 's'}"
        text = (
            f"scanned {self.scanned} objects in {runs}; {verb} {self.deleted} ({self.deleted_bytes} bytes); kept {kept}"
        )
        text += f" ({detail})" if detail else ""
        return text + ("; stopped at --limit, more objects remain" if self.truncated else "")


# --- names --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectName:
    run_segment: str
    step_segment: str
    invalid: bool  # ``.attempt-N.invalid.json``: rejected replies, not a report


def parse_name(name: str) -> ObjectName | None:
    """``flow_runs/{run}/{step}/{fingerprint}.json`` (or ``.attempt-N.invalid.json``), else None."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != RUNS or not parts[1] or not parts[2]:
        return None
    if _REPORT.fullmatch(parts[3]):
        return ObjectName(parts[1], parts[2], invalid=False)
    if _INVALID.fullmatch(parts[3]):
        return ObjectName(parts[1], parts[2], invalid=True)
    return None


def run_id_of(run_segment: str, hint: str | None = None) -> str | None:
    """The run id whose segment (``core/artifact_naming.py``) is ``run_segment``, or None.

    A segment up to SEGMENT_MAX characters is un-quoted; a cut one (longer, ``…~hash``) cannot be,
    and is named only by the object's ``runId`` metadata (``hint``), accepted when its own segment
    is this one (128 bits of sha256 agree). Either way the id must be a Firestore document id."""
    candidates = [hint] if len(run_segment) > SEGMENT_MAX else [unquote(run_segment, errors="surrogatepass"), hint]
    for candidate in candidates:
        if candidate and _document_id(candidate) and segment(candidate) == run_segment:
            return candidate
    return None


def _document_id(value: str) -> bool:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: not a Firestore id
        return False
    reserved = value.startswith("__") and value.endswith("__")
    return 0 < size <= FIRESTORE_ID_MAX_BYTES and "/" not in value and value not in (".", "..") and not reserved


# --- the decision ---------------------------------------------------------------------------------


class RunView:
    """What the decision needs of a run document: every ``gs://`` address in it and where, and its
    steps by the segment their reports are written under."""

    def __init__(self, run: RunSnapshot) -> None:
        self.run = run
        self.references: dict[str, str] = {}
        for step_id in sorted(run.steps):  # outputs.gcs_uri first: the reason an operator expects
            uri = _gcs_uri(run.steps[step_id])
            if uri is not None:
                self.references.setdefault(uri, f"step {step_id}")
        for path, text in _strings(run.document, ()):
            for found in _GS_URI.findall(text):
                self.references.setdefault(found.rstrip(_URI_TAIL), "the run document at " + ".".join(path))
        self.by_segment: dict[str, Step] = {segment(step_id): step for step_id, step in run.steps.items()}


def _gcs_uri(step: Step) -> str | None:
    outputs = step.data.get("outputs")
    uri = outputs.get("gcs_uri") if isinstance(outputs, Mapping) else None
    return uri if isinstance(uri, str) else None


def _strings(value: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, str(index)))


def decide_all(listing: Iterable[Listed], runs: Mapping[str, RunSnapshot | None], policy: Policy) -> list[Decision]:
    """A decision per object; ``runs`` holds every run ``run_ids(listing)`` names (None: no such document)."""
    views = {run_id: None if run is None else RunView(run) for run_id, run in runs.items()}
    return [decide(listed, views, policy) for listed in listing]


def run_ids(listing: Iterable[Listed]) -> list[str]:
    """The runs the objects name, in listing order, each once."""
    found: dict[str, None] = {}
    for listed in listing:
        parsed = parse_name(listed.name)
        run_id = run_id_of(parsed.run_segment, listed.run_id_hint) if parsed else None
        if run_id is not None:
            found.setdefault(run_id)
    return list(found)


def decide(listed: Listed, views: Mapping[str, RunView | None], policy: Policy) -> Decision:
    uri = f"gs://{policy.bucket}/{listed.name}"
    age = None if listed.updated is None else max(timedelta(0), policy.now - listed.updated)

    def keep(kind: str, reason: str) -> Decision:
        return Decision(listed, uri, False, kind, reason, age)

    parsed = parse_name(listed.name)
    if parsed is None:
        return keep(FOREIGN, "not a report or rejected-replies name")
    run_id = run_id_of(parsed.run_segment, listed.run_id_hint)
    if run_id is None:
        return keep(UNATTRIBUTED, "run id not recoverable from the object name (nor its runId metadata)")
    if parsed.invalid and not policy.include_invalid:
        return keep(INVALID, "rejected replies, left to the bucket's lifecycle rule")
    if run_id not in views:
        raise KeyError(f"run {run_id!r} was not read")
    view = views[run_id]
    if view is not None:
        where = view.references.get(uri)
        if where is not None:
            return keep(REFERENCED, f"referenced by {where}")
        step = view.by_segment.get(parsed.step_segment)
        if step is not None and step.status not in FINISHED:
            return keep(ACTIVE, f"step {step.step_id} is {step.status or 'without status'}: it may write or reuse it")
    if listed.updated is None or listed.updated >= policy.cutoff:
        return keep(YOUNG, f"written within the last {policy.days:g}d")
    why = f"run {run_id} no longer exists" if view is None else _unreferenced(view, parsed)
    return Decision(listed, uri, True, "", why, age)


def _unreferenced(view: RunView, parsed: ObjectName) -> str:
    step = view.by_segment.get(parsed.step_segment)
    if step is None:
        return f"unreferenced: run {view.run.run_id} has no step of segment {parsed.step_segment}"
    other = _gcs_uri(step)
    if other is not None:
        return f"unreferenced: step {step.step_id} points at {other}"
    return f"unreferenced: step {step.step_id} is {step.status or 'without status'} with no outputs.gcs_uri"


def format_age(age: timedelta) -> str:
    seconds = int(age.total_seconds())
    if seconds >= 86400:
        return f"{seconds // 86400}d"
    if seconds >= 3600:
        return f"{seconds // 3600}h"
    return f"{seconds // 60}m"


# --- the run --------------------------------------------------------------------------------------

ReadRuns = Callable[[list[str]], Mapping[str, RunSnapshot | None]]
Delete = Callable[[Listed], str]  # "deleted", or CHANGED / GONE; OperatorError when it failed


def sweep(
    listing: Iterable[Listed],
    read_runs: ReadRuns,
    policy: Policy,
    delete: Delete | None,
    say: Callable[[str], None],
    verbose: bool = False,
    limit: int | None = None,
) -> Summary:
    """Decide (and with ``delete``, delete) batch by batch of RUNS_PER_READ run segments; prints a line
    per object deleted or to delete (kept ones when notable, or all with ``verbose``)."""
    summary = Summary()
    for batch in _batches(listing, limit, summary):
        ids = run_ids(batch)
        for decision in decide_all(batch, read_runs(ids) if ids else {}, policy):
            if not _apply(decision, delete, summary, say, verbose):
                return summary
    return summary


def _apply(decision: Decision, delete: Delete | None, summary: Summary, say: Callable[[str], None], v: bool) -> bool:
    kind = decision.kind
    if decision.delete and delete is not None:
        try:
            outcome = delete(decision.listed)
        except OperatorError as exc:
            summary.failure = exc.message
            return False
        kind = "" if outcome == "deleted" else outcome
        if kind:
            decision = Decision(decision.listed, decision.uri, False, kind, kind, decision.age)
    if not kind:
        summary.deleted += 1
        summary.deleted_bytes += decision.listed.size
        say(decision.line("deleted" if delete is not None else "would delete"))
    else:
        summary.kept[kind] += 1
        if v or kind in NOTABLE:
            say(decision.line("kept"))
    return True


def _batches(listing: Iterable[Listed], limit: int | None, summary: Summary) -> Iterator[list[Listed]]:
    """The listing in runs of objects spanning at most RUNS_PER_READ run segments (a listing is in
    name order, so a run's objects come together); counts objects and run segments into ``summary``."""
    batch: list[Listed] = []
    segments: set[str] = set()
    for listed in listing:
        if limit is not None and summary.scanned >= limit:
            summary.truncated = True
            break
        run_segment = listed.name.split("/", 2)[1] if "/" in listed.name else ""
        if run_segment not in segments and len(segments) >= RUNS_PER_READ:
            yield batch
            batch, segments = [], set()
        if run_segment not in segments:
            segments.add(run_segment)
            summary.runs += 1
        batch.append(listed)
        summary.scanned += 1
    if batch:
        yield batch


# --- GCS and Firestore ----------------------------------------------------------------------------


def list_objects(client: Any, bucket: str, prefix: str, limit: int | None) -> Iterator[Listed]:
    """The bucket's objects under ``prefix`` in name order (pages of PAGE_SIZE; ``limit`` + 1 at most, so
    that ``sweep`` sees that more remain)."""
    from google.cloud.storage.retry import DEFAULT_RETRY

    retry = DEFAULT_RETRY.with_timeout(GCS_RETRY_SECONDS)
    with _gcs_errors(f"listing gs://{bucket}/{prefix}", bucket):
        pages = client.list_blobs(
            bucket,
            prefix=prefix,
            max_results=None if limit is None else limit + 1,
            page_size=PAGE_SIZE,
            fields="items(name,generation,size,updated,timeCreated,metadata),nextPageToken",
            timeout=GCS_CALL_SECONDS,
            retry=retry,
        )
        for blob in pages:
            metadata = blob.metadata or {}
            hint = metadata.get("runId")
            yield Listed(
                name=blob.name,
                generation=int(blob.generation or 0),
                size=int(blob.size or 0),
                updated=blob.updated or blob.time_created,
                run_id_hint=hint if isinstance(hint, str) else None,
            )


def deleter(client: Any, bucket: str) -> Delete:
    """Deletes an object if it still has the generation listed: CHANGED on a 412, GONE on a 404."""
    from google.api_core import exceptions as gexc
    from google.cloud.storage.retry import DEFAULT_RETRY

    handle = client.bucket(bucket)
    retry = DEFAULT_RETRY.with_timeout(GCS_RETRY_SECONDS)

    def delete(listed: Listed) -> str:
        with _gcs_errors(f"deleting gs://{bucket}/{listed.name}", bucket):
            try:
                blob = handle.blob(listed.name)
                blob.delete(if_generation_match=listed.generation, timeout=GCS_CALL_SECONDS, retry=retry)
            except gexc.PreconditionFailed:
                return CHANGED
            except gexc.NotFound:
                return GONE
        return "deleted"

    return delete


@contextmanager
def _gcs_errors(doing: str, bucket: str) -> Iterator[None]:
    """A GCS failure is ``OperatorError``: 2 for a missing bucket or no credentials, else 1."""
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_errors

    try:
        yield
    except gexc.NotFound as exc:
        raise OperatorError(f"{doing} failed: bucket {bucket!r} does not exist") from exc
    except gexc.GoogleAPICallError as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise OperatorError(f"{doing} failed: {first}", exit_code=1) from exc
    except auth_errors.DefaultCredentialsError as exc:
        raise OperatorError(f"no GCS credentials ({exc}); set STORAGE_EMULATOR_HOST for fake-gcs-server") from exc
    except (gexc.GoogleAPIError, auth_errors.GoogleAuthError, OSError) as exc:
        raise OperatorError(f"{doing} failed: {type(exc).__name__}", exit_code=1) from exc


def run_reader(client: Any) -> ReadRuns:
    """Reads runs with one ``get_all`` per call (at most RUNS_PER_READ ids): id -> snapshot, or None."""

    def read(ids: list[str]) -> dict[str, RunSnapshot | None]:
        found: dict[str, RunSnapshot | None] = dict.fromkeys(ids)
        with firestore_errors(f"reading {len(ids)} runs"):
            for snap in client.get_all([run_ref(client, run_id) for run_id in ids], **call_options()):
                if snap.exists:
                    found[snap.id] = run_from_document(snap.id, snap.to_dict() or {}, snap.update_time)
        return found

    return read


def header(bucket: str, prefix: str, project: str, database: str, policy: Policy, dry_run: bool) -> str:
    mode = "dry run: nothing is deleted (pass --delete)" if dry_run else "deleting"
    return (
        f"# gs://{bucket}/{prefix} against Firestore project {project}, database {database}; objects written "
        f"before {rfc3339(policy.cutoff.replace(microsecond=0))} ({policy.days:g}d); {mode}"
    )
