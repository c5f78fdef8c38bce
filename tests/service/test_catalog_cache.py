"""The per-instance catalog cache: one read per burst, edits seen after the TTL, pins forever."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from tests.builders import make_profile, make_prompt
from tests.fakes import FakeCatalog, Monotonic
from worker_llm_client.catalog.cache import CachedCatalog
from worker_llm_client.errors import PermanentStepError, PromptNotFound, permanent_or
from worker_llm_client.execution_models import Profile, Prompt


class CountingStore(FakeCatalog):
    def __init__(self) -> None:
        super().__init__([make_prompt(version=1), make_prompt(version=2, template="v2 {{ team }}")], [make_profile()])
        self.reads = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def get_prompt(self, prompt_id: str, version: int | None) -> Prompt:
        self.reads += 1
        self.entered.set()
        self.release.wait(5)
        return super().get_prompt(prompt_id, version)

    def get_profile(self, profile_id: str) -> Profile:
        self.reads += 1
        return super().get_profile(profile_id)

    def get_prompt_and_profile(
        self, prompt_id: str, version: int | None, profile_id: str
    ) -> tuple[Prompt | PermanentStepError, Profile | PermanentStepError]:
        self.reads += 1  # one request for both
        return (
            permanent_or(lambda: FakeCatalog.get_prompt(self, prompt_id, version)),
            permanent_or(lambda: FakeCatalog.get_profile(self, profile_id)),
        )


def test_a_burst_of_concurrent_steps_costs_one_read() -> None:
    inner = CountingStore()
    inner.release.clear()  # hold the first read open so the others pile up behind it
    cache = CachedCatalog(inner, ttl=30)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get_prompt, "weekly", None) for _ in range(8)]
        assert inner.entered.wait(5)
        inner.release.set()
        assert {f.result().version for f in futures} == {2}
    assert inner.reads == 1


def test_an_edit_is_picked_up_after_the_ttl() -> None:
    inner, clock = CountingStore(), Monotonic()
    cache = CachedCatalog(inner, ttl=30, clock=clock)
    assert cache.get_prompt("weekly", None).version == 2
    inner.prompts[("weekly", 3)] = replace(make_prompt(version=3), template="v3")
    inner.current["weekly"] = 3
    clock.now += 29
    assert cache.get_prompt("weekly", None).version == 2
    clock.now += 2
    assert cache.get_prompt("weekly", None).version == 3
    assert inner.reads == 2


def test_pinned_versions_never_expire_and_profiles_are_cached() -> None:
    inner, clock = CountingStore(), Monotonic()
    cache = CachedCatalog(inner, ttl=30, clock=clock)
    for _ in range(3):
        assert cache.get_prompt("weekly", 1).version == 1
        assert cache.get_profile("fast").model == "gemini-2.5-flash"
        clock.now += 1000
    assert inner.reads == 1 + 3  # the pin once; the profile once per expired TTL


def test_not_found_is_cached_for_the_ttl_and_raised_afresh() -> None:
    inner, clock = CountingStore(), Monotonic()
    cache = CachedCatalog(inner, ttl=30, clock=clock)
    errors = []
    for _ in range(2):
        with pytest.raises(PromptNotFound) as info:
            cache.get_prompt("ghost", None)
        errors.append(info.value)
    assert inner.reads == 1 and errors[0] is not errors[1]


def test_ttl_zero_disables_caching() -> None:
    inner = CountingStore()
    cache = CachedCatalog(inner, ttl=0)
    cache.get_prompt("weekly", None)
    cache.get_prompt("weekly", None)
    assert inner.reads == 2


def test_a_cold_step_reads_its_prompt_and_profile_in_one_request_then_none() -> None:
    inner, clock = CountingStore(), Monotonic()
    cache = CachedCatalog(inner, ttl=30, clock=clock)
    for _ in range(3):
        prompt, profile = cache.get_prompt_and_profile("weekly", None, "fast")
        assert isinstance(prompt, Prompt) and prompt.version == 2
        assert isinstance(profile, Profile) and profile.model == "gemini-2.5-flash"
    assert inner.reads == 1
    clock.now += 31
    cache.get_prompt_and_profile("weekly", None, "fast")
    assert inner.reads == 2


def test_only_what_is_not_cached_is_read() -> None:
    inner = CountingStore()
    cache = CachedCatalog(inner, ttl=30)
    cache.get_prompt("weekly", 1)  # a pin, cached for good
    cache.get_prompt_and_profile("weekly", 1, "fast")  # reads only the profile
    cache.get_prompt_and_profile("weekly", 1, "fast")
    assert inner.reads == 2


def test_a_missing_prompt_comes_back_as_its_error_cached_and_fresh_per_caller() -> None:
    inner = CountingStore()
    cache = CachedCatalog(inner, ttl=30)
    first, profile = cache.get_prompt_and_profile("ghost", None, "fast")
    second, _ = cache.get_prompt_and_profile("ghost", None, "fast")
    assert isinstance(first, PromptNotFound) and isinstance(second, PromptNotFound) and first is not second
    assert isinstance(profile, Profile) and inner.reads == 1
    with pytest.raises(PromptNotFound):
        cache.get_prompt("ghost", None)  # the same cache entry
    assert inner.reads == 1


def test_a_missing_pinned_version_is_looked_up_again_after_the_ttl() -> None:
    inner, clock = CountingStore(), Monotonic()
    cache = CachedCatalog(inner, ttl=30, clock=clock)
    with pytest.raises(PromptNotFound):
        cache.get_prompt("weekly", 9)
    inner.prompts[("weekly", 9)] = replace(make_prompt(version=9), template="v9")  # pushed since
    clock.now += 31
    assert cache.get_prompt("weekly", 9).version == 9


def test_an_outage_reading_the_prompt_is_returned_beside_a_cached_profile_and_not_cached() -> None:
    from worker_llm_client.errors import StorageUnavailable

    class PromptOutage(CountingStore):
        down = True

        def get_prompt(self, prompt_id: str, version: int | None) -> Prompt:
            if self.down:
                raise StorageUnavailable("reading prompt 'weekly' from Firestore failed: RetryError")
            return super().get_prompt(prompt_id, version)

    inner = PromptOutage()
    cache = CachedCatalog(inner, ttl=30)
    cache.get_profile("fast")
    prompt, profile = cache.get_prompt_and_profile("weekly", None, "fast")
    assert isinstance(prompt, StorageUnavailable) and isinstance(profile, Profile)
    inner.down = False
    prompt, _ = cache.get_prompt_and_profile("weekly", None, "fast")
    assert isinstance(prompt, Prompt)  # the outage was not cached
