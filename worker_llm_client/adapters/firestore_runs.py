"""The run store on Firestore: claims and token-guarded finalizes of ``flow_runs/{runId}``.

Field paths are built with ``FieldPath`` so step ids like ``weekly-report.v2`` are quoted. Every
Firestore call goes through one edge, ``_edge``: a failed precondition is ``False``; a write the
document cannot hold (1 MiB, 40,000 index entries) is ``RunTooLarge``; any other Firestore error is
``RunStoreUnavailable`` (the entry point answers 5xx so Eventarc redelivers; a finalize retries).
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.retry import Retry, if_exception_type
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.field_path import FieldPath

from worker_llm_client.adapters.firestore_errors import FIRESTORE_ERRORS, is_too_large
from worker_llm_client.adapters.firestore_values import run_snapshot
from worker_llm_client.adapters.known_runs import KnownRuns
from worker_llm_client.core.transitions import Delete
from worker_llm_client.core.wake import WAKE_AT, apply_patch, with_wake
from worker_llm_client.errors import RunStoreUnavailable, RunTooLarge
from worker_llm_client.models import RUNS, Patch, RunSnapshot, Step, Written
from worker_llm_client.ports import FollowOn

RUN_LOCK_STRIPES = 64
FINALIZE_ROUNDS = 10  # reads-and-writes of one finalize batch before it gives up (the use case retries it)

WAKE_FIELD = ".".join(WAKE_AT)


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_firestore_updates(patch: Patch) -> dict[str, Any]:
    return {
        FieldPath(*path).to_api_repr(): firestore.DELETE_FIELD if value is Delete.FIELD else value
        for path, value in patch.items()
    }


@dataclass
class _Finalize:
    """One step's finalize, waiting to be committed with the others of its run."""

    step_id: str
    token: str
    patch: Patch
    retried: bool = False  # an earlier try of this very patch may have landed before it failed
    follow: FollowOn | None = None  # more for the same write, planned on the run as it leaves it
    committed: bool | None = None  # None until its batch ran; then whether its token still held
    error: BaseException | None = None


class FirestoreRunStore:
    """Every write to a run is a precondition write on the ``update_time`` it was decided from.

    A finalize reads the run, keeps the patches whose steps are still RUNNING under their claim
    tokens, and writes them only if the run is unchanged since that read; on conflict it reads
    again. That is a single-document transaction in two RPCs and without locks (a Firestore
    transaction costs three, and concurrent ones on one document lock each other until one times
    out). Finalizes of one run are group-committed per instance: steps that finish while another
    finalize of their run is in flight queue up, and the next one to get the run's lock writes
    them all at once (one write, one event, each patch still guarded by its own token).
    """

    def __init__(self, client: firestore.Client, clock: Callable[[], datetime] = utc_now) -> None:
        self.client, self.clock = client, clock
        self._run_locks = [threading.Lock() for _ in range(RUN_LOCK_STRIPES)]
        self._waiting: dict[str, list[_Finalize]] = {}
        self._waiting_lock = threading.Lock()
        self.known = KnownRuns()  # the runs as our own last finalize left them: the next one need not read

    def _ref(self, run_id: str) -> Any:
        return self.client.collection(RUNS).document(run_id)

    def get_run(self, run_id: str) -> RunSnapshot | None:
        """The run as stored, read as its protobuf and decoded as its steps are read
        (``firestore_values.py``): the client's own snapshot decodes and copies every field twice."""
        request = {"name": self._ref(run_id)._document_path}
        with _edge(f"reading run '{run_id}'"):
            try:
                document = self.client._firestore_api.get_document(request=request, metadata=self.client._rpc_metadata)
            except gexc.NotFound:
                return None
        return run_snapshot(run_id, type(document).pb(document))

    def write_if_unchanged(self, run_id: str, update_time: datetime, patch: Patch) -> Written:
        self.known.forget(run_id)  # whatever it lands, a version this instance kept is not the run's any more
        return self._write(run_id, update_time, patch)[0]

    def _write(self, run_id: str, update_time: datetime, patch: Patch) -> tuple[Written, datetime | None]:
        """What the write did, and the ``update_time`` it left when it landed."""
        option = self.client.write_option(last_update_time=update_time)
        retried: list[Exception] = []  # what the client's own retry of the commit saw
        with _edge(f"writing run '{run_id}'", run_id):
            try:
                result = self._ref(run_id).update(
                    to_firestore_updates(patch), option=option, retry=_commit_retry(retried)
                )
            except (gexc.FailedPrecondition, gexc.NotFound):
                return (Written.UNCERTAIN if retried else Written.CONFLICT), None
        return Written.LANDED, getattr(result, "update_time", None)

    def finalize(
        self,
        run_id: str,
        step_id: str,
        token: str,
        patch: Patch,
        retried: bool = False,
        follow: FollowOn | None = None,
    ) -> bool:
        mine = _Finalize(step_id, token, patch, retried, follow)
        with self._waiting_lock:
            self._waiting.setdefault(run_id, []).append(mine)
        with self._run_locks[zlib.crc32(run_id.encode()) % RUN_LOCK_STRIPES]:
            if mine.committed is None and mine.error is None:  # no batch took it yet: lead one
                self._commit(run_id)  # raises what failed the batch
        if mine.error is not None:  # a batch another finalize led failed: this one failed with it
            raise _followers_error(mine.error, step_id, run_id) from mine.error
        return bool(mine.committed)

    def _commit(self, run_id: str) -> None:
        """Write every finalize of ``run_id`` waiting now; each one is settled whatever happens.
        A batch the document cannot hold is written one finalize at a time: those that fit land."""
        batch: list[_Finalize] = []
        held: list[bool | None]
        try:
            with self._waiting_lock:
                batch = self._waiting.pop(run_id, [])
            try:
                held = list(self._write_held(run_id, batch))
            except RunTooLarge:
                if len(batch) == 1:
                    raise
                held = [self._write_alone(run_id, item) for item in batch]
        except BaseException as exc:  # the whole batch fails alike (the event is redelivered)
            for item in batch:
                item.error = exc
            raise
        for item, ok in zip(batch, held, strict=True):
            item.committed = ok

    def _write_alone(self, run_id: str, item: _Finalize) -> bool | None:
        """One finalize of a split batch; its failure is its own (those written before it stand)."""
        try:
            return self._write_held(run_id, [item])[0]
        except (RunTooLarge, RunStoreUnavailable) as exc:
            item.error = exc
            return None

    def _write_held(self, run_id: str, batch: list[_Finalize]) -> list[bool]:
        """Which patches of ``batch`` were written: those whose steps are still held by their
        tokens, each with what its follow-on planned. A write the client retried after it had
        landed fails its own precondition; the next read shows what that write left (its status
        and timestamps, under our tokens), and it counts as written; so does a retried finalize
        whose earlier try landed before it failed. Conflicts are read again after a short,
        growing, jittered pause."""
        before = [False] * len(batch)  # retried finalizes the first read shows as landed already
        sent, sent_run = [False] * len(batch), None  # what the last write carried, and the run it left
        kept = None if any(item.retried for item in batch) else self.known.take(run_id)
        for conflicts in range(FINALIZE_ROUNDS + 1):
            run = kept if conflicts == 0 and kept is not None else self.get_run(run_id)
            if run is None or run.update_time is None:
                return before  # the run is gone: nothing is held
            if conflicts == 0:
                before = [item.retried and _landed(run.steps.get(item.step_id), item) for item in batch]
            if sent_run is not None and any(
                _landed(run.steps.get(i.step_id), i) for i, s in zip(batch, sent, strict=True) if s
            ):
                return _followed(batch, sent, sent_run, before)  # one write carried them all: all landed
            if conflicts == FINALIZE_ROUNDS:
                break
            held = [
                not done and (step := run.steps.get(item.step_id)) is not None and step.held_by(item.token)
                for item, done in zip(batch, before, strict=True)
            ]
            patch, after = _batch_patch(run, batch, held)
            if not patch:
                return before
            written = with_wake(run, patch, self.clock())
            landed, update_time = self._write(run_id, run.update_time, written)
            if landed is Written.LANDED:
                self.known.remember(apply_patch(run, written), update_time)
                return _followed(batch, held, after, before)
            sent, sent_run = held, after  # the run changed or went since the read (or this very write landed)
            jitter = random.random()  # noqa: S311  # nosec B311  # backoff jitter, not a secret
            time.sleep(min(1.0, 0.02 * 2**conflicts) * (0.5 + jitter / 2))
        raise RunStoreUnavailable(f"finalizing steps of run '{run_id}' conflicted {FINALIZE_ROUNDS} times in a row")

    def due_runs(self, now: datetime, limit: int) -> list[str]:
        query = (
            self.client.collection(RUNS)
            .where(filter=FieldFilter(WAKE_FIELD, "<=", now))
            .order_by(WAKE_FIELD)
            .limit(limit)
            .select([WAKE_FIELD])
        )
        with _edge("querying the runs due"):
            return [snap.id for snap in query.stream()]

    def overdue(self, due_by: datetime) -> tuple[int, datetime | None]:
        due: Any = self.client.collection(RUNS).where(filter=FieldFilter(WAKE_FIELD, "<=", due_by))
        with _edge("counting the runs overdue"):
            counted = due.count(alias="overdue").get()[0][0]
            oldest = [snap.get(WAKE_FIELD) for snap in due.order_by(WAKE_FIELD).limit(1).select([WAKE_FIELD]).stream()]
        return int(counted.value), (oldest[0] if oldest else None)


def _commit_retry(retried: list[Exception]) -> Retry:
    """google-cloud-firestore's own retry of a commit (its default for ``Commit``), noting each
    error it retries: a precondition that fails after one may be that of a try that landed."""
    transient = if_exception_type(gexc.ResourceExhausted, gexc.ServiceUnavailable)
    return Retry(predicate=transient, initial=0.1, maximum=60.0, multiplier=1.3, timeout=60.0, on_error=retried.append)


@contextmanager
def _edge(doing: str, run_id: str = "") -> Iterator[None]:
    """The run store's one translation of Firestore's errors (see the module docstring)."""
    try:
        yield
    except FIRESTORE_ERRORS as exc:
        if is_too_large(exc):
            raise RunTooLarge(f"run '{run_id}' cannot hold this write: Firestore's document limits") from exc
        raise RunStoreUnavailable(f"{doing} failed: {type(exc).__name__}") from exc


def _batch_patch(run: RunSnapshot, batch: list[_Finalize], held: list[bool]) -> tuple[dict[Any, Any], RunSnapshot]:
    """The held finalizes' patches, then what each one's follow-on plans on the run as they leave
    it (each planned after the ones before it), and the run as the whole write leaves it."""
    patch = {path: value for item, ok in zip(batch, held, strict=True) if ok for path, value in item.patch.items()}
    follows = [item.follow for item, ok in zip(batch, held, strict=True) if ok and item.follow is not None]
    if not follows:
        return patch, run
    after = apply_patch(run, patch)
    for follow in follows:
        extra = follow.plan(after)
        if extra:
            patch.update(extra)
            after = apply_patch(after, extra)
    return patch, after


def _followed(batch: list[_Finalize], written: list[bool], run: RunSnapshot, before: list[bool]) -> list[bool]:
    """Tell the follow-ons of the finalizes ``written`` that their plans landed with them; which
    finalizes count as written (those, and retried ones that had landed before)."""
    for item, ok in zip(batch, written, strict=True):
        if ok and item.follow is not None:
            item.follow.landed(run)
    return [a or b for a, b in zip(written, before, strict=True)]


def _followers_error(error: BaseException, step_id: str, run_id: str) -> Exception:
    """A fresh error for a finalize whose batch another one led and that failed: the same kind
    (transient, too large), never the same object (each thread raises its own)."""
    message = f"finalizing step '{step_id}' of run '{run_id}' failed: {type(error).__name__}"
    if isinstance(error, RunTooLarge):
        return RunTooLarge(error.message)
    if isinstance(error, RunStoreUnavailable):
        return RunStoreUnavailable(message)
    return RuntimeError(message)


LANDED_MARKS = ("status", "finishedAt", "retryAt")  # together, what only our own write leaves behind


def _landed(step: Step | None, item: _Finalize) -> bool:
    """``step`` is as ``item``'s patch left it: still under its claim token, with the status and
    the timestamps (``finishedAt``/``retryAt``, to the microsecond) it wrote. Another writer
    failing the step under our token (a lease taken as expired) leaves its own timestamp."""
    if step is None or step.claim_token != item.token:
        return False
    marks = {path[-1]: value for path, value in item.patch.items() if len(path) == 3 and path[-1] in LANDED_MARKS}
    return len(marks) > 1 and all(step.data.get(field) == value for field, value in marks.items())
