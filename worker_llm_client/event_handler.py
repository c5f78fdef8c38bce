"""One Firestore event -> a decision, with the cheapest possible path for events we caused.

Decoding and selection use the event payload only: when nothing in the snapshot is runnable (the
usual case, since our own writes re-trigger us) the handler returns without building a client or
making a network call. Only when there is work is the executor built (lazily, once per instance).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from worker_llm_client.adapters.cloudevent_decoding import decode_event, run_id_from_attributes
from worker_llm_client.core.step_selection import runnable_steps
from worker_llm_client.errors import EventDecodeError
from worker_llm_client.observability import bind_event, get_logger, trace_resource

if TYPE_CHECKING:
    from worker_llm_client.execute_step import RunExecutor, StepReport


def utc_now() -> datetime:
    return datetime.now(UTC)


def handle_firestore_event(
    attributes: Mapping[str, Any],
    data: Any,
    executor: Callable[[], RunExecutor],
    project: str = "",
    now: Callable[[], datetime] = utc_now,
) -> list[StepReport]:
    """Returns the reports of the steps executed (empty for ignored and no-op events)."""
    run_id = run_id_from_attributes(attributes)
    bind_event(attributes.get("id"), run_id, trace_resource(project, attributes.get("traceparent")))
    log = get_logger()
    log.info("event.received", eventType=attributes.get("type"), subject=attributes.get("subject"))
    try:
        event = decode_event(attributes, data)
    except EventDecodeError as exc:
        log.warning("event.ignored", reason="undecodable", detail=str(exc))
        return []
    if event is None:
        log.info("event.ignored", reason="not_a_flow_run_document")
        return []
    if event.snapshot is None:
        log.info("event.ignored", reason="document_deleted")
        return []
    if not runnable_steps(event.snapshot, now()):
        log.info("event.ignored", reason="nothing_runnable")
        return []
    return executor().handle(event.snapshot)


DEFAULT_SWEEP_LIMIT = 200
MAX_SWEEP_LIMIT = 1000


def handle_sweep(query: Mapping[str, str], executor: Callable[[], RunExecutor]) -> dict[str, int]:
    """Cloud Scheduler's periodic call: re-drive due runs, return what was done."""
    bind_event(None, None, None)
    raw = query.get("limit", "")
    limit = (
        min(int(raw), MAX_SWEEP_LIMIT) if raw.isdecimal() and raw.isascii() and int(raw) > 0 else DEFAULT_SWEEP_LIMIT
    )
    report = executor().sweep(limit)
    summary = {"runs": report.runs, "steps": report.steps, "repaired": report.repaired, "failed": report.failed}
    summary["limit"] = limit
    get_logger().info("sweep.finished", **summary)
    return summary
