"""How many claimed steps an instance holds, against ``CLAIM_AHEAD`` x ``MAX_PARALLEL_STEPS``
(``execute_step.py``; the model gate lets ``MAX_PARALLEL_STEPS`` of them call the model at once).

Events and the sweeper take slots here before claiming and give back what they did not claim; a
claimed step's thread holds its slot while it executes that step and the ones its finalizes claim
next (``next_claim.py``). So the steps an instance holds never outnumber what it can execute
before their leases run out. The one exception: an event for a run with nothing in flight claims
one step even with no slot free (``RunExecutor.handle``), so that no run waits for the sweeper.
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
