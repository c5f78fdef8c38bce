"""A per-instance cache in front of the catalog's store: a burst of steps costs one read per document.

Current prompts and profiles are cached for ``ttl`` seconds, so an edit pushed to Firestore is used
within the TTL without a deploy; pinned prompt versions are immutable and cached until evicted.
Lookups of the same key wait for one read in flight (single flight). Not-found answers are cached
for the TTL too, so a run full of steps naming a missing prompt does not hammer Firestore.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar, cast

from worker_llm_client.errors import PermanentStepError, RetryableStepError, StepError, permanent_or
from worker_llm_client.execution_models import Profile, Prompt
from worker_llm_client.ports import CatalogStore

MAX_ENTRIES = 512
T = TypeVar("T")


class CachedCatalog:
    """The catalog through a per-instance TTL cache (see the module docstring)."""

    def __init__(self, inner: CatalogStore, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner, self.ttl, self.clock = inner, ttl, clock
        self._entries: OrderedDict[tuple[str, ...], tuple[float, Any]] = OrderedDict()
        self._key_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._lock = threading.Lock()

    def get_prompt(self, prompt_id: str, version: int | None) -> Prompt:
        return self._cached(
            *_prompt_key(prompt_id, version, self.ttl), lambda: self.inner.get_prompt(prompt_id, version)
        )

    def get_profile(self, profile_id: str) -> Profile:
        return self._cached(("profile", profile_id), self.ttl, lambda: self.inner.get_profile(profile_id))

    def get_prompt_and_profile(
        self, prompt_id: str, version: int | None, profile_id: str
    ) -> tuple[Prompt | StepError, Profile | PermanentStepError]:
        """From the cache; when both are missing, one read of both (a cold step costs one RPC).
        With the profile at hand, an outage reading the prompt is returned too, not raised: the
        caller governs the profile first, and a profile it refuses fails the step for that."""
        prompt_key, prompt_ttl = _prompt_key(prompt_id, version, self.ttl)
        profile_key = ("profile", profile_id)
        first, second = sorted((prompt_key, profile_key))  # one order for every caller: no deadlock
        with self._key_lock(first), self._key_lock(second):
            prompt, profile = self._fresh(prompt_key), self._fresh(profile_key)
            if prompt is None and profile is None:
                prompt, profile = self.inner.get_prompt_and_profile(prompt_id, version, profile_id)
                self._store(prompt_key, prompt_ttl, prompt)
                self._store(profile_key, self.ttl, profile)
            elif prompt is None:
                try:
                    prompt = permanent_or(lambda: self.inner.get_prompt(prompt_id, version))
                except RetryableStepError as outage:  # not cached: the next step reads again
                    return outage, _own(profile)
                self._store(prompt_key, prompt_ttl, prompt)
            elif profile is None:
                profile = permanent_or(lambda: self.inner.get_profile(profile_id))
                self._store(profile_key, self.ttl, profile)
        return _own(prompt), _own(profile)

    def _cached(self, key: tuple[str, ...], ttl: float, load: Callable[[], T]) -> T:
        with self._key_lock(key):
            hit = self._fresh(key)
            if hit is None:
                hit = permanent_or(load)  # a definite answer (not found, malformed) is cached too
                self._store(key, ttl, hit)
        if isinstance(hit, PermanentStepError):
            raise _own(hit)
        return cast(T, hit)

    def _key_lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _fresh(self, key: tuple[str, ...]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= self.clock():
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def _store(self, key: tuple[str, ...], ttl: float, value: Any) -> None:
        if isinstance(value, PermanentStepError):  # "not found" holds for the TTL, even for a pin
            ttl = min(ttl, self.ttl)
        with self._lock:
            self._entries[key] = (self.clock() + ttl, value)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                evicted, _ = self._entries.popitem(last=False)
                self._key_locks.pop(evicted, None)


def _prompt_key(prompt_id: str, version: int | None, ttl: float) -> tuple[tuple[str, ...], float]:
    """The current prompt is cached for ``ttl``; a pinned version is immutable: until evicted."""
    if version is None:
        return ("prompt", prompt_id), ttl
    return ("prompt", prompt_id, str(version)), float("inf")


def _own(value: T) -> T:
    """A cached error as a fresh instance per caller (threads share the cache; raising one
    instance from several threads would tangle their tracebacks)."""
    return cast(T, value.fresh()) if isinstance(value, PermanentStepError) else value
