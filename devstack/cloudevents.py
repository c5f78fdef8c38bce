"""Firestore CloudEvent bodies built the way Firestore builds them (DocumentEventData protobuf)."""

from __future__ import annotations

import urllib.request
from datetime import UTC, datetime
from typing import Any

from google.cloud.firestore_v1 import _helpers
from google.events.cloud.firestore_v1.types import DocumentEventData
from google.protobuf import timestamp_pb2

from devstack.services import LOOPBACK_OPENER

Pb: Any = DocumentEventData.pb()


def _document(project: str, run_id: str, data: dict[str, Any], when: datetime) -> Any:
    doc = Pb().value.__class__()
    doc.name = f"projects/{project}/databases/(default)/documents/flow_runs/{run_id}"
    for key, value in data.items():
        encoded = _helpers.encode_value(value)  # wire-compatible, different proto package
        doc.fields[key].MergeFromString(type(encoded).serialize(encoded))
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(when)
    doc.update_time.CopyFrom(stamp)
    doc.create_time.CopyFrom(stamp)
    return doc


def document_event_bytes(
    project: str,
    run_id: str,
    data: dict[str, Any] | None,
    old: dict[str, Any] | None = None,
    when: datetime | None = None,
) -> bytes:
    when = when or datetime.now(UTC)
    message = Pb()
    if data is not None:
        message.value.CopyFrom(_document(project, run_id, data, when))
    if old is not None:
        message.old_value.CopyFrom(_document(project, run_id, old, when))
    return bytes(message.SerializeToString())


def event_headers(
    run_id: str, event_id: str = "ev-1", content_type: str = "application/protobuf", **extra: str
) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.firestore.document.v1.written",
        "ce-source": "//firestore.googleapis.com/projects/demo/databases/(default)",
        "ce-id": event_id,
        "ce-subject": f"documents/flow_runs/{run_id}",
        "ce-document": f"flow_runs/{run_id}",
        "Content-Type": content_type,
    }
    headers.update({f"ce-{k}": v for k, v in extra.items()})
    return headers


def deliver(url: str, run_id: str, body: bytes, event_id: str, timeout: float = 60.0) -> int:
    """POST a Firestore CloudEvent the way Eventarc (and the emulator) does; the HTTP status."""
    headers = event_headers(run_id, event_id=event_id)
    request = urllib.request.Request(f"{url}/", data=body, method="POST", headers=headers)  # noqa: S310 - a local http:// function URL
    with LOOPBACK_OPENER.open(request, timeout=timeout) as response:
        return int(response.status)
