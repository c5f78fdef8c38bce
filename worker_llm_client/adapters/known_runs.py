"""The runs as this instance's own last finalize left them (issue 15).

A finalize reads the run before its precondition write, and for a run of hundreds of steps that
read is most of a step's cost. When the last write to a run was this instance's own finalize, the
run as that write left it is known: the read before the patch, the patch applied, the write's
``update_time``. The next finalize of that run writes on that version without reading; the
precondition still guards it (another writer since makes it fail, and the finalize reads as
before). A claim this instance writes makes the kept version stale, so it is dropped.

The kept version's size is an upper bound: the read's bound plus what the patches since may have
added. A version whose bound passes ``MAX_KEPT_BYTES`` is not kept (the claim planning would walk
its document, which is the read's, not the version's): big documents are read as before.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime

from worker_llm_client.core.document_size import MAX_DOCUMENT_BYTES, string_size, value_size
from worker_llm_client.core.transitions import Delete
from worker_llm_client.models import Patch, RunSnapshot

MAX_KEPT_BYTES = MAX_DOCUMENT_BYTES // 2
MAX_KEPT_RUNS = 256


class KnownRuns:
    def __init__(self, capacity: int = MAX_KEPT_RUNS) -> None:
        self.capacity = capacity
        self._runs: OrderedDict[str, RunSnapshot] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, run: RunSnapshot, patch: Patch, update_time: datetime | None) -> None:
        """``run`` (the patch applied) is the run as our write at ``update_time`` left it."""
        bound = None if run.size_bound is None else run.size_bound + growth_bound(patch)
        with self._lock:
            self._runs.pop(run.run_id, None)
            if update_time is None or bound is None or bound > MAX_KEPT_BYTES:
                return
            self._runs[run.run_id] = replace(run, update_time=update_time, size_bound=bound)
            while len(self._runs) > self.capacity:
                self._runs.popitem(last=False)

    def take(self, run_id: str) -> RunSnapshot | None:
        """The kept version of the run, if any (taken: a version is written on at most once)."""
        with self._lock:
            return self._runs.pop(run_id, None)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)


def growth_bound(patch: Patch) -> int:
    """At most what ``patch`` adds to a document's Firestore size: each value set, with its path's
    names (a deletion adds nothing)."""
    return sum(
        sum(string_size(name) for name in path) + value_size(value)
        for path, value in patch.items()
        if value is not Delete.FIELD
    )
