"""The runs as this instance's own last finalize left them (issue 15).

A finalize reads the run before its precondition write, and for a run of hundreds of steps that
read is most of a step's cost. When the last write to a run was this instance's own finalize, the
run as that write left it is known: the read before the patch, the patch applied
(``wake.apply_patch``, whose size bound grows with the patch), the write's ``update_time``. The
next finalize of that run writes on that version without reading; the precondition still guards
it (another writer since makes it fail, and the finalize reads as before). A claim this instance
writes makes the kept version stale, so it is dropped. At most ``MAX_KEPT_RUNS`` runs are kept
(a version holds its document: up to 1 MiB each), the least recently written dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from datetime import datetime

from worker_llm_client.models import RunSnapshot

MAX_KEPT_RUNS = 32  # an instance finalizes steps of at most 2 x MAX_PARALLEL_STEPS runs at once


class KnownRuns:
    def __init__(self, capacity: int = MAX_KEPT_RUNS) -> None:
        self.capacity = capacity
        self._runs: OrderedDict[str, RunSnapshot] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, run: RunSnapshot, update_time: datetime | None) -> None:
        """``run`` is the run as our write at ``update_time`` left it."""
        with self._lock:
            self._runs.pop(run.run_id, None)
            if update_time is None:
                return
            self._runs[run.run_id] = replace(run, update_time=update_time)
            while len(self._runs) > self.capacity:
                self._runs.popitem(last=False)

    def take(self, run_id: str) -> RunSnapshot | None:
        """The kept version of the run, if any (taken: a version is written on at most once)."""
        with self._lock:
            return self._runs.pop(run_id, None)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)
