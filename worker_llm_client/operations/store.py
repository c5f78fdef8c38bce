"""Firestore for the operator commands: a client from ``Settings.from_env`` (as ``seed`` does) and a
run read into a ``RunSnapshot``. The client honours ``FIRESTORE_EMULATOR_HOST``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from worker_llm_client.models import RUNS, RunSnapshot, run_from_document
from worker_llm_client.operations import OperatorError

RETRY_SECONDS = 30.0  # transient errors are retried this long, then the command fails (not the SDK's minutes)
CALL_SECONDS = 10.0


def connect() -> Any:
    """A Firestore client for GOOGLE_CLOUD_PROJECT / FIRESTORE_DATABASE; ``OperatorError`` (2) without them."""
    from google.auth.exceptions import DefaultCredentialsError
    from google.cloud import firestore

    from worker_llm_client.config import Settings

    config = Settings.from_env()
    if not config.project:
        raise OperatorError("GOOGLE_CLOUD_PROJECT is not set (for the local emulator, set FIRESTORE_EMULATOR_HOST too)")
    try:
        return firestore.Client(project=config.project, database=config.database)
    except DefaultCredentialsError as exc:
        raise OperatorError(f"no Firestore credentials ({exc}); set FIRESTORE_EMULATOR_HOST for the emulator") from exc


def project() -> str:
    from worker_llm_client.config import Settings

    return Settings.from_env().project


def run_ref(client: Any, run_id: str) -> Any:
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise OperatorError(f"{run_id!r} is not a run id (a Firestore document id: non-empty, no '/')")
    return client.collection(RUNS).document(run_id)


def read_run(client: Any, run_id: str) -> RunSnapshot:
    """The run as stored now; ``OperatorError`` (2) when there is no such run."""
    with firestore_errors(f"reading run '{run_id}'"):
        snap = run_ref(client, run_id).get(**call_options())
    if not snap.exists:
        raise OperatorError(f"run '{run_id}' does not exist")
    return run_from_document(run_id, snap.to_dict() or {}, snap.update_time)


def call_options() -> dict[str, Any]:
    """``retry``/``timeout`` for one Firestore call: an unreachable Firestore fails within about 30 s."""
    from google.api_core.retry import Retry, if_transient_error

    return {"retry": Retry(predicate=if_transient_error, timeout=RETRY_SECONDS), "timeout": CALL_SECONDS}


@contextmanager
def firestore_errors(doing: str) -> Iterator[None]:
    """A Firestore failure is ``OperatorError`` (1) naming what was being done and the error's first line."""
    from worker_llm_client.adapters.firestore_errors import FIRESTORE_ERRORS

    try:
        yield
    except FIRESTORE_ERRORS as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise OperatorError(f"{doing} failed: {first}", exit_code=1) from exc
