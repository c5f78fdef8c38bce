"""Cloud Functions entry points. Decode, bind log context, call the use case; nothing else."""

from __future__ import annotations

from typing import Any

import flask
import functions_framework
from cloudevents.http.event import CloudEvent

from worker_llm_client import bootstrap
from worker_llm_client.config import settings
from worker_llm_client.core.trace_context import incoming_trace
from worker_llm_client.event_handler import Deliveries, handle_firestore_event, handle_sweep
from worker_llm_client.observability import configure_logging, failures_logged_safely

configure_logging(settings().log_level)
DELIVERIES = Deliveries()  # this instance's events in flight and recently handled


@functions_framework.cloud_event
def handle_flow_run_event(event: CloudEvent) -> None:
    """Eventarc ``google.cloud.firestore.document.v1.written`` on ``flow_runs/{runId}``. The trace
    is the HTTP request's: functions-framework does not copy it into the CloudEvent."""
    attributes = event.get_attributes()
    headers = flask.request.headers if flask.has_request_context() else None
    trace = incoming_trace(headers, fallback=attributes.get("traceparent"))
    with failures_logged_safely("event.failed"):
        handle_firestore_event(
            attributes, event.get_data(), bootstrap.executor, settings().project, deliveries=DELIVERIES, trace=trace
        )


@functions_framework.http
def sweep_flow_runs(request: Any) -> tuple[dict[str, int | None], int]:
    """Cloud Scheduler, every few minutes: re-drive retries that are due and expired leases.
    Answers 500 when a run raised (it was logged and pushed back), so that the job records it."""
    trace = incoming_trace(getattr(request, "headers", None))
    with failures_logged_safely("sweep.failed"):
        summary = handle_sweep(request.args, bootstrap.executor, settings().project, trace)
    return summary, 500 if summary.get("failed") else 200
