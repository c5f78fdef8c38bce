"""The model gate: the instance's bound on concurrent model calls, and a per-model cooldown after a 429.

One gate per instance, shared by every invocation it serves at once, so concurrent events cannot
multiply the load on the model. After a 429 the model cools down for the server's hint: calls of
other steps wait instead of hammering it, or give up at once (a retryable LLM_RATE_LIMITED) when
the cooldown outlasts what they may wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from worker_llm_client.core.bounds import retry_hint_seconds
from worker_llm_client.errors import LlmRateLimited, LlmUnavailable

DEFAULT_COOLDOWN_SECONDS = 1.0


@dataclass(frozen=True)
class GateStats:
    """The gate's counters as a call is admitted (logged on ``llm.request`` as ``queue*``)."""

    submitted: int
    inflight: int
    completed: int

    def as_log(self) -> dict[str, int]:
        return {"queueSubmitted": self.submitted, "queueInflight": self.inflight, "queueCompleted": self.completed}


class ModelGate:
    """Admits a model call when the model is not cooling down and fewer than ``capacity`` run."""

    def __init__(
        self,
        capacity: int,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sleep, self.monotonic = sleep, monotonic
        self._capacity = threading.BoundedSemaphore(capacity)
        self._lock = threading.Lock()
        self._cool_until: dict[str, float] = {}
        self.submitted = self.inflight = self.completed = 0

    def cool_down(self, model: str, seconds: float | None) -> None:
        """Cool ``model`` down for the server's hint, clamped to an hour; no usable hint (None,
        NaN) means the default. An unbounded hint would starve every later call on the instance."""
        hint = retry_hint_seconds(seconds)
        until = self.monotonic() + (DEFAULT_COOLDOWN_SECONDS if hint is None else hint)
        with self._lock:
            self._cool_until[model] = max(self._cool_until.get(model, 0.0), until)

    def cooldown_left(self, model: str) -> float:
        with self._lock:
            return max(0.0, self._cool_until.get(model, 0.0) - self.monotonic())

    @contextmanager
    def admit(self, model: str, max_wait: float) -> Iterator[GateStats]:
        """Admit one call of ``model`` (after its cooldown, if any) for the ``with`` block's span;
        give up with a retryable error when that would take longer than ``max_wait``."""
        with self._lock:
            self.submitted += 1
        left = self.cooldown_left(model)
        if left > max_wait:
            self._done()
            raise LlmRateLimited(f"model '{model}' is cooling down after a 429 for {left:.1f}s", retry_after=left)
        if left > 0:
            self.sleep(left)
        if not self._capacity.acquire(timeout=None if max_wait == float("inf") else max(max_wait - left, 0.0)):
            self._done()
            raise LlmUnavailable("no model-call slot of this instance came free in time")
        try:
            with self._lock:
                self.inflight += 1
                stats = GateStats(self.submitted, self.inflight, self.completed)
            yield stats
        finally:
            with self._lock:
                self.inflight -= 1
            self._capacity.release()
            self._done()

    def _done(self) -> None:
        with self._lock:
            self.completed += 1
