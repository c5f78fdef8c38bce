"""A Firestore ``document.v1.written`` CloudEvent -> the run snapshot it carries.

Accepted bodies: raw ``DocumentEventData`` protobuf (production), the same base64-encoded (the
Firestore emulator), and its proto3 JSON form. The run id comes from the ``document`` attribute
(``flow_runs/<runId>``), falling back to ``subject`` (``documents/flow_runs/<runId>``); ``source``
is never parsed (the emulator's is malformed). Both attributes arrive as HTTP headers: the
CloudEvents HTTP binding percent-encodes what is not printable ASCII (Eventarc), a sender that does
not sends raw UTF-8 that the WSGI server reads as latin-1 (PEP 3333); both are undone.

The body is untrusted and decoding it is pure: whatever fails on it would fail again on every
redelivery, so every failure (but MemoryError) becomes EventDecodeError, whose message never quotes
the document. A step's fields are decoded when first read (``firestore_values.py``), so for them
that error may come later, from the read. Only google-events/protobuf are imported here: this
module is on the cold-start path.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

from google.events.cloud.firestore_v1.types import DocumentEventData
from google.protobuf import json_format
from google.protobuf.message import DecodeError

from worker_llm_client.adapters.firestore_values import run_snapshot
from worker_llm_client.errors import EventDecodeError
from worker_llm_client.models import RUNS, RunSnapshot

_BASE64_LINES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/\r\n"
_ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"
_EventPb: Any = DocumentEventData.pb()
_DocumentPb: Any = type(_EventPb().value)


def run_id_from_attributes(attributes: Mapping[str, Any]) -> str | None:
    """``flow_runs/<id>`` from ``document``, else from ``subject``; None for other documents."""
    document = _header_text(attributes.get("document"))
    if not document:
        subject = _header_text(attributes.get("subject"))
        document = subject.removeprefix("documents/") if subject.startswith("documents/") else ""
    parts = document.split("/")
    if len(parts) != 2 or parts[0] != RUNS or not parts[1]:
        return None
    return parts[1]


def _header_text(value: object) -> str:
    """An attribute as its sender meant it: raw UTF-8 that WSGI read as latin-1 is read again as
    UTF-8, then the binding's ``%XX`` sequences are decoded (a literal '%' arrives as %25). What
    neither could have produced is kept as it is; anything but text counts as absent."""
    if not isinstance(value, str):
        return ""
    with contextlib.suppress(UnicodeError):
        value = value.encode("latin-1").decode("utf-8")
    if "%" not in value:
        return value
    try:
        return unquote_to_bytes(value).decode("utf-8")
    except UnicodeError:
        return value


def decode_snapshot(run_id: str, data: Any) -> RunSnapshot | None:
    """The run the body carries (None: deleted); raises EventDecodeError for bad bodies, and only that."""
    try:
        return _snapshot(run_id, *_parse(data))
    except (EventDecodeError, MemoryError):
        raise
    except Exception as exc:  # deep nesting, out-of-range timestamps, bad text: see the module docstring
        raise EventDecodeError(f"body cannot be decoded ({type(exc).__name__})") from exc


def _snapshot(run_id: str, document: Any, encoded: bytes | None = None) -> RunSnapshot | None:
    return None if document is None else run_snapshot(run_id, document, encoded)


def _parse(data: Any) -> tuple[Any, bytes | None]:
    """The body's ``value`` (the document as written), or None when it has none (deleted), with
    the bytes it was parsed from when the body was read field by field (``_value_bytes``)."""
    if isinstance(data, Mapping):
        return _value_of(_from_json(data)), None
    if isinstance(data, str):
        data = data.encode("utf-8")
    if not isinstance(data, bytes | bytearray) or not data:
        raise EventDecodeError("empty or missing event body")
    body = bytes(data)
    if body.lstrip().startswith(b"{"):
        return _value_of(_from_json(_json_object(body))), None
    if _looks_base64(body):
        try:
            body = base64.b64decode(body, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise EventDecodeError("body looks base64-encoded but does not decode") from exc
        if not body:
            raise EventDecodeError("empty or missing event body")
    try:
        value = _value_bytes(body)
        if value is None:
            return _value_of(_EventPb.FromString(body)), None
        return _DocumentPb.FromString(value), value
    except DecodeError as exc:
        raise EventDecodeError("body is not a DocumentEventData protobuf") from exc


def _value_of(message: Any) -> Any:
    return message.value if message.HasField("value") else None


def _value_bytes(body: bytes) -> bytes | None:
    """The encoded ``value`` of a DocumentEventData, found by reading its top-level fields only:
    ``old_value`` (as big) is never parsed. None when the body holds anything else than one
    ``value`` and length-delimited fields (the whole message is parsed then, and judged)."""
    found: bytes | None = None
    at = 0
    while at < len(body):
        tag, at = _varint(body, at)
        length, at = _varint(body, at) if tag & 7 == 2 else (-1, at)
        if length < 0 or at + length > len(body) or (tag >> 3 == 1 and found is not None):
            return None
        if tag >> 3 == 1:
            found = body[at : at + length]
        at += length
    return found


def _varint(body: bytes, at: int) -> tuple[int, int]:
    """A base-128 varint at ``at`` and where it ends; (-1, at) if it does not end within 10 bytes."""
    value = 0
    for shift in range(0, 70, 7):
        if at >= len(body):
            return -1, at
        byte = body[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
    return -1, at


def _looks_base64(body: bytes) -> bool:
    """Base64 lines, at most two '=', trailing ASCII whitespace: what the regular expression
    ``[A-Za-z0-9+/\\r\\n]*={0,2}\\s*`` accepted, in linear time (backtracking, it took seconds on
    newlines followed by anything else). Trailing whitespace goes first, then up to two pads; the
    rest must be alphabet and line breaks only."""
    text = body.rstrip(_ASCII_WHITESPACE).removesuffix(b"=").removesuffix(b"=")
    return not text.translate(None, delete=_BASE64_LINES)


def _json_object(body: bytes) -> Mapping[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise EventDecodeError("body is not valid JSON") from exc
    if not isinstance(value, Mapping):
        raise EventDecodeError("JSON body is not an object")
    return value


def _from_json(data: Mapping[str, Any]) -> Any:
    try:
        return json_format.ParseDict(dict(data), _EventPb(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise EventDecodeError("JSON body is not a DocumentEventData") from exc
