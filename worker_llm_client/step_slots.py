"""How many claimed steps an instance is executing, against ``MAX_PARALLEL_STEPS``.

The sweeper works on several due runs at once and takes slots here before claiming (and gives
back what it did not claim), so that the steps a sweep holds never outnumber what the instance can
execute before their leases run out. Events do not take slots: each claims at most
``MAX_PARALLEL_STEPS``, and the model gate bounds the calls of all of them together.
"""

from __future__ import annotations

import threading
import time


class StepSlots:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._free = capacity
        self._changed = threading.Condition()

    def take(self, wanted: int, timeout: float) -> int:
        """Up to ``wanted`` slots, waiting at most ``timeout`` s for at least one; 0 if none came."""
        if wanted <= 0:
            return 0
        give_up_at = time.monotonic() + max(timeout, 0.0)
        with self._changed:
            while self._free == 0:
                left = give_up_at - time.monotonic()
                if (left <= 0 or not self._changed.wait(left)) and self._free == 0:
                    return 0
            taken = min(wanted, self._free)
            self._free -= taken
            return taken

    def give(self, count: int) -> None:
        if count <= 0:
            return
        with self._changed:
            self._free = min(self.capacity, self._free + count)
            self._changed.notify_all()


class Executing:
    """How many steps the instance is executing (``with executing:`` around each), for the next
    claim a finalize makes (``next_claim.py``): events' claims take no slot, so this counts all."""

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Executing:
        with self._lock:
            self.count += 1
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.count -= 1
