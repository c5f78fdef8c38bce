"""The composition root: real adapters built from Settings, lazily, once per instance.

Heavy clients (Firestore, Storage, the model SDKs, jsonschema, jinja2) are imported here, inside
functions, so a cold instance that only sees no-op events never loads them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from worker_llm_client.config import FINALIZE_MARGIN_SECONDS, Settings, settings

if TYPE_CHECKING:
    from worker_llm_client.execute_step import RunExecutor
    from worker_llm_client.ports import LlmClient

_lock = threading.Lock()
_executor: RunExecutor | None = None


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def work_window(function_timeout: float, lease: float) -> float:
    """How long a claimed step may work in one invocation: within the function's timeout and its
    own lease (past the lease another worker may take it over), less room to upload and finalize."""
    window = min(function_timeout, lease)
    return window - finalize_margin(function_timeout, lease)


def finalize_margin(function_timeout: float, lease: float) -> float:
    """What is kept at the end of the window to upload the report and finalize the step."""
    return min(FINALIZE_MARGIN_SECONDS, min(function_timeout, lease) / 4)


FINALIZE_SHARE = 0.9  # of the margin, for finalize retries: the rest is slack before the timeout


def build_executor(config: Settings, llm: LlmClient | None = None) -> RunExecutor:
    """The executor over the real adapters; ``llm`` replaces the provider router (benchmarks use a
    model that answers at once, to measure everything else)."""
    import google.cloud.storage as storage
    from google.cloud import firestore

    from worker_llm_client.adapters.firestore_catalog import FirestoreCatalog
    from worker_llm_client.adapters.firestore_runs import FirestoreRunStore
    from worker_llm_client.adapters.gcs_artifacts import GcsArtifactStore
    from worker_llm_client.adapters.llm_router import LlmRouter
    from worker_llm_client.call_model import ModelRetry
    from worker_llm_client.catalog.cache import CachedCatalog
    from worker_llm_client.execute_step import ExecutorPolicy, RunExecutor

    config.require_executor_settings()
    db = firestore.Client(project=config.project, database=config.database)
    gcs = storage.Client(project=config.project)
    closers: list[Callable[[], object]] = [gcs.close, db.close]
    if llm is None:
        router = LlmRouter(config)
        llm, closers = router, [router.close, *closers]
    return RunExecutor(
        runs=FirestoreRunStore(db, clock=SystemClock().now),
        catalog=CachedCatalog(FirestoreCatalog(db), ttl=config.catalog_cache_seconds),
        artifacts=GcsArtifactStore(gcs, config.artifacts_bucket),
        llm=llm,
        clock=SystemClock(),
        policy=ExecutorPolicy(
            worker_id=config.worker_id,
            lease_seconds=config.lease_seconds,
            max_parallel_steps=config.max_parallel_steps,
            allowed_llm_profiles=config.allowed_llm_profiles,
            allowed_models=config.allowed_models,
            work_seconds=work_window(config.function_timeout_seconds, config.lease_seconds),
            finalize_seconds=FINALIZE_SHARE * finalize_margin(config.function_timeout_seconds, config.lease_seconds),
        ),
        closers=tuple(closers),
        retry=ModelRetry(budget_seconds=config.model_retry_budget_seconds),
    )


def executor() -> RunExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = build_executor(settings())
        return _executor
