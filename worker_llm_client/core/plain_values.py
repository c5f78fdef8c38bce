"""A step's ``vars`` as plain JSON values: what a template sees, the same on every read path.

The event path decodes Firestore's protobuf values itself (``adapters/cloudevent_decoding.py``);
the sweeper and claim-conflict paths read through the Firestore SDK's ``to_dict()``, which yields
live client objects (a ``DocumentReference`` can delete its document with the function's
credentials). ``plain`` turns both into the same inert values, duck-typed so that no google type
is imported here:

    Mapping with str keys        -> dict, keys sorted (neither path keeps Firestore's map order)
    list, tuple                  -> list
    str, int, bool, None         -> itself (text must be valid UTF-8)
    float                        -> itself; NaN and the infinities are refused: they are not JSON
    datetime (the SDK's and the event path's DatetimeWithNanoseconds are datetimes)
                                 -> RFC 3339 in UTC with microseconds: "2026-11-22T12:00:00.000000Z"
    bytes                        -> standard base64
    a document reference (str ``path``, ``id`` and ``_document_path``)
                                 -> its full resource name "projects/P/databases/D/documents/...",
                                    the event path's ``reference_value``; ``path`` if it has none
    a geo point (float ``latitude`` and ``longitude``)
                                 -> {"latitude": float, "longitude": float}, as the event path
    anything else                -> InvalidStep

Bounds: ``MAX_DEPTH`` levels of nesting and ``MAX_BYTES`` in all, counted as it goes (about the
size of the values as JSON text). Messages name the path of the offending value and its type,
never the value.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeAlias

from worker_llm_client.errors import InvalidStep

JsonValue: TypeAlias = dict[str, "JsonValue"] | list["JsonValue"] | str | int | float | bool | None

MAX_DEPTH = 32
MAX_BYTES = 256 * 1024
_MAX_PATH_CHARS = 120
_SCALAR_BYTES = 8  # what a number, a boolean or null counts for


def plain(value: object, where: str = "value") -> JsonValue:
    """``value`` as plain JSON values; ``where`` names it in messages (e.g. "inputs.vars")."""
    return _Walk(where).value(value, (), 0)


class _Walk:
    def __init__(self, where: str) -> None:
        self.where = where
        self.left = MAX_BYTES

    def value(self, value: object, path: tuple[str | int, ...], depth: int) -> JsonValue:
        if depth > MAX_DEPTH:
            raise InvalidStep(f"{self.name(path)} nests deeper than {MAX_DEPTH} levels")
        if value is None or isinstance(value, bool | int):
            digits = value.bit_length() // 3 + 2 if isinstance(value, int) else 0
            self.spend(max(_SCALAR_BYTES, digits), path)
            return value
        if isinstance(value, float):
            return self.number(value, path)
        if isinstance(value, str):
            return self.text(value, path)
        if isinstance(value, Mapping):
            return self.mapping(value, path, depth)
        if isinstance(value, list | tuple):
            self.spend(2, path)
            return [self.value(item, (*path, index), depth + 1) for index, item in enumerate(value)]
        return self.other(value, path, depth)

    def mapping(self, value: Mapping[object, object], path: tuple[str | int, ...], depth: int) -> JsonValue:
        self.spend(2, path)
        keys = [key for key in value if isinstance(key, str)]
        if len(keys) != len(value):
            raise InvalidStep(f"{self.name(path)} has a key that is not a string")
        result: dict[str, JsonValue] = {}
        for key in sorted(keys):
            self.text(key, (*path, key))
            result[key] = self.value(value[key], (*path, key), depth + 1)
        return result

    def other(self, value: object, path: tuple[str | int, ...], depth: int) -> JsonValue:
        if isinstance(value, datetime):
            return self.text(_rfc3339(value), path)
        if isinstance(value, bytes | bytearray):
            return self.text(base64.b64encode(value).decode("ascii"), path)
        reference = _reference_name(value)
        if reference is not None:
            return self.text(reference, path)
        latitude, longitude = getattr(value, "latitude", None), getattr(value, "longitude", None)
        if _is_number(latitude) and _is_number(longitude):
            return self.value({"latitude": latitude, "longitude": longitude}, path, depth)
        raise InvalidStep(f"{self.name(path)} is not a JSON value ({type(value).__name__})")

    def number(self, value: float, path: tuple[str | int, ...]) -> JsonValue:
        if not math.isfinite(value):
            raise InvalidStep(f"{self.name(path)} is not a JSON value (a non-finite number)")
        self.spend(_SCALAR_BYTES, path)
        return value

    def text(self, value: str, path: tuple[str | int, ...]) -> str:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidStep(f"{self.name(path)} is not valid UTF-8 text") from None
        self.spend(size + 3, path)
        return value

    def spend(self, size: int, path: tuple[str | int, ...]) -> None:
        self.left -= size
        if self.left < 0:
            raise InvalidStep(f"{self.where} is larger than {MAX_BYTES} bytes")

    def name(self, path: tuple[str | int, ...]) -> str:
        text = self.where + "".join(_segment(part) for part in path)
        return text if len(text) <= _MAX_PATH_CHARS else text[: _MAX_PATH_CHARS - 1] + "…"


def _segment(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    return f".{part}" if part.isidentifier() else f"[{part!r}]"


def _rfc3339(value: datetime) -> str:
    utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return utc.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _reference_name(value: object) -> str | None:
    """A document reference's full resource name, read from attributes only (no method is called)."""
    path, doc_id = getattr(value, "path", None), getattr(value, "id", None)
    if not isinstance(path, str) or not isinstance(doc_id, str):
        return None
    try:
        full = getattr(value, "_document_path", None)
    except ValueError:  # the SDK's reference without a client; never one read from Firestore
        full = None
    return full if isinstance(full, str) else path


def _is_number(value: object) -> bool:
    return isinstance(value, float)
