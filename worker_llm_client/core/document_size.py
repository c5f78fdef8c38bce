"""What a run document weighs in Firestore, and how many steps one run may have.

Firestore stores at most 1 MiB per document (``MAX_DOCUMENT_BYTES``), sized by its documented
formula: a string is its UTF-8 bytes + 1, integers, floats and timestamps 8, booleans and null 1,
a map the sum of its keys and values, an array the sum of its elements; the document adds its
name (each path segment as a string, + 16) and 32; a reference weighs its document's name. One
run document holds every step, so the executor refuses (``RUN_TOO_LARGE``) what could not fit
before it spends anything on it:

- a run with more than ``MAX_STEPS_PER_RUN`` steps: none of its report steps is run;
- a step whose result would not fit: each claimed step reserves ``STEP_RESULT_RESERVE_BYTES``
  (its outputs, bounded: provider strings are clipped) until it is finalized, and a claim keeps
  ``DOCUMENT_HEADROOM_BYTES`` free for the orchestrator's own writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from worker_llm_client.core.transitions import Delete

MAX_DOCUMENT_BYTES = 1_048_576
DOCUMENT_HEADROOM_BYTES = 64 * 1024
MAX_STEPS_PER_RUN = 500
STEP_RESULT_RESERVE_BYTES = 3 * 1024


def string_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass")) + 1


def value_size(value: Any) -> int:
    """The stored size of one field value (iterative: a hostile document may be deeply nested)."""
    total = 0
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += string_size(item)
        elif isinstance(item, bool) or item is None:
            total += 1
        elif isinstance(item, int | float | datetime):
            total += 8
        elif isinstance(item, bytes | bytearray):
            total += len(item)
        elif isinstance(item, Mapping):
            total += sum(string_size(str(key)) for key in item)
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(getattr(item, "path", None), str):  # a reference the SDK decoded: its document's name
            total += name_size(item.path.split("/"))
        else:  # a geo point (16 bytes) or a value we do not know: sized by its text, at least 16
            total += max(16, string_size(str(item)))
    return total


def name_size(path: Iterable[str]) -> int:
    """A document name's size (also a reference's): each collection and document id, + 16."""
    return sum(string_size(segment) for segment in path) + 16


def document_size(path: Iterable[str], fields: Mapping[str, Any]) -> int:
    """Firestore's size of the document at ``path`` (collection and document ids) with ``fields``."""
    return name_size(path) + value_size(dict(fields)) + 32


def room_for_results(size: int, in_flight: int) -> int:
    """How many more step results a document of ``size`` bytes can take while ``in_flight`` claimed
    steps still hold their reservation."""
    free = MAX_DOCUMENT_BYTES - DOCUMENT_HEADROOM_BYTES - size - in_flight * STEP_RESULT_RESERVE_BYTES
    return max(free // STEP_RESULT_RESERVE_BYTES, 0)


def patch_size_bound(patch: Mapping[tuple[str, ...], Any]) -> int:
    """At most what writing ``patch`` adds to a document's size: each value set, with its path's
    names (a deletion adds nothing)."""
    return sum(
        sum(string_size(name) for name in path) + value_size(value)
        for path, value in patch.items()
        if value is not Delete.FIELD
    )
