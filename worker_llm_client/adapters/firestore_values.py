"""Firestore ``Value`` protobufs -> plain Python values, decoded only when read.

A run document carries every step, so decoding all of it for every event and every read made a
step's cost grow with the run (issue 15). ``LazyFields`` is a read-only mapping over a protobuf
``map<string, Value>`` that decodes a key when it is first read (and keeps it): the no-op path
reads each step's ``type``, ``status`` and ``dependsOn`` and nothing else. Two levels are lazy:
the ``steps`` map and each step (``run_snapshot`` builds both); a value read from either is decoded
whole, as plain dicts and lists, and so are the run's own fields. Both the event body's
``Document`` (google-events) and the store's (google-cloud-firestore) are read through it: their
``Value`` fields have the same names.

``firestore_size_bound`` is an upper bound of Firestore's size of a document computed from its
encoded bytes, without decoding it (see the function). A value that cannot be decoded (only a
forged body has one: Firestore stores no such value) raises ``EventDecodeError`` when it is read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from proto.datetime_helpers import DatetimeWithNanoseconds

from worker_llm_client.core.document_size import name_size
from worker_llm_client.errors import EventDecodeError
from worker_llm_client.models import RUNS, RunSnapshot, Step, run_from_document

INTEGER_TAG = b"\x10"  # Value.integer_value: field 2, varint
_ABSENT = object()


class LazyFields(Mapping[str, Any]):
    """The fields of a protobuf map of ``Value``s, each decoded on first read."""

    __slots__ = ("_decoded", "_fields")

    def __init__(self, fields: Any) -> None:
        self._fields = fields
        self._decoded: dict[str, Any] = {}

    def __getitem__(self, key: str) -> Any:
        value = self.get(key, _ABSENT)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = self._decoded.get(key, _ABSENT)
        if value is not _ABSENT:
            return value
        if key not in self._fields:  # never index first: a protobuf map inserts what it is asked for
            return default
        value = self._decoded[key] = self._decode(self._fields[key])
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._decoded or key in self._fields

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        import copy

        return {key: copy.deepcopy(value, memo) for key, value in self.items()}

    def _decode(self, value: Any) -> Any:
        try:
            return decode_value(value)
        except (EventDecodeError, MemoryError):
            raise
        except Exception as exc:  # deep nesting, out-of-range timestamps: never quoted
            raise EventDecodeError(f"a field cannot be decoded ({type(exc).__name__})") from exc


def run_snapshot(run_id: str, document: Any, encoded: bytes | None = None) -> RunSnapshot:
    """The run a ``Document`` protobuf holds: its own fields decoded now, each step's fields as they
    are read (``firestore_values.py``); ``encoded``: the bytes it was parsed from, if at hand."""
    update_time = timestamp(document.update_time) if document.HasField("update_time") else None
    fields: dict[str, Any] = {}
    steps: dict[str, Step] | None = None
    for key, value in document.fields.items():
        if key == "steps" and value.WhichOneof("value_type") == "map_value":
            fields[key] = lazy = LazyFields(value.map_value.fields)
            steps = _steps(lazy)
        else:
            fields[key] = decode_value(value)
    size = firestore_size_bound(document, (RUNS, run_id), encoded)
    return run_from_document(run_id, fields, update_time, size_bound=size, steps=steps or {})


def _steps(steps: LazyFields) -> dict[str, Step]:
    """Each step with its ``type`` and ``status`` read straight off the protobuf (what every event
    reads of every step), the rest of it left to decode as read: each step that is a map is kept in
    ``steps`` as its own ``LazyFields`` (a step that is not a map decodes whole, when read)."""
    built: dict[str, Step] = {}
    for step_id, value in steps._fields.items():
        if value.WhichOneof("value_type") != "map_value":
            built[step_id] = Step(step_id, "", "", {})  # malformed: left for INVALID_STEP
            continue
        body = steps._decoded[step_id] = LazyFields(value.map_value.fields)
        built[step_id] = Step(step_id, _text(body, "type"), _text(body, "status"), body)
    return built


def _text(body: LazyFields, key: str) -> str:
    if key not in body._fields:
        return ""
    value = body._fields[key]
    return str(value.string_value) if value.WhichOneof("value_type") == "string_value" else str(body.get(key))


def decode_value(value: Any) -> Any:
    """One ``Value``, whole."""
    kind = value.WhichOneof("value_type")
    if kind == "map_value":
        return {key: decode_value(item) for key, item in value.map_value.fields.items()}
    if kind == "array_value":
        return [decode_value(item) for item in value.array_value.values]
    if kind == "timestamp_value":
        return timestamp(value.timestamp_value)
    if kind == "null_value" or kind is None:
        return None
    if kind == "geo_point_value":
        return {"latitude": value.geo_point_value.latitude, "longitude": value.geo_point_value.longitude}
    return getattr(value, kind)


def timestamp(ts: Any) -> datetime:
    stamp: datetime = DatetimeWithNanoseconds.from_timestamp_pb(ts)
    return stamp


def firestore_size_bound(document: Any, path: tuple[str, ...], encoded: bytes | None = None) -> int:
    """At least Firestore's size of ``document`` (a ``Document`` protobuf) at ``path``.

    Every value but an integer takes at least as many bytes encoded as Firestore counts for it
    (a string its bytes plus a tag and a length, against Firestore's + 1; a timestamp 8 or more;
    a map entry 5 bytes more than its key), and an integer at least 2 against Firestore's 8, with
    at least 2 bytes of its map entry or array element to spare: so the encoded size plus 4 per
    integer bounds it. Integers are counted from above by their tag byte (any 0x10 byte counts),
    in C, without walking the values. The exceptions, a geo point at 0,0 or a timestamp in the
    1970s (a short varint), are a few bytes short each; the claim's reserve absorbs them.

    ``encoded`` (the bytes ``document`` was parsed from, an event's ``value``) serves instead of
    serializing it again (0.7 ms at 500 steps): the argument holds for any encoding of the document.
    One that leaves a field out (a map entry's key or value, read as empty) is shorter than this
    module would write it, but a left-out value is a null (1 byte to Firestore, an empty key 1 too)
    and the entry's own tag and length (2 bytes) still cover what it holds.
    """
    if encoded is None:
        encoded = document.SerializeToString()
    return len(encoded) + 4 * encoded.count(INTEGER_TAG) + name_size(path) + 32
