"""Which profiles a step may use: the one it names, then that profile's fallbacks, each governed.

A profile is usable when it is in ``ALLOWED_LLM_PROFILES``, enabled, and names a model in
``ALLOWED_MODELS``; nothing is read for a profile outside the allowlist. A fallback that is not
usable (not allowlisted, missing, malformed, disabled, its model not allowed) is skipped with an
``llm.fallback`` line saying why, and the next one is tried; only the step's own profile fails the
step. Fallbacks are not followed recursively: the step's profile lists every one it may fall to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from worker_llm_client.errors import ModelNotAllowed, PermanentStepError, ProfileNotAllowed, StepError
from worker_llm_client.execution_models import Profile, Prompt, StepInputs
from worker_llm_client.observability import Logger
from worker_llm_client.ports import CatalogStore

T = TypeVar("T")


class ProfileGovernor:
    def __init__(
        self, catalog: CatalogStore, allowed_llm_profiles: frozenset[str], allowed_models: frozenset[str], log: Logger
    ) -> None:
        self.catalog, self.log = catalog, log
        self.allowed_llm_profiles, self.allowed_models = allowed_llm_profiles, allowed_models

    def resolve(self, inputs: StepInputs) -> tuple[Profile, Prompt]:
        """The governed profile and the prompt, read together; the profile's problems come first."""
        self.require_allowlisted(inputs.llm_profile)
        prompt, profile = self.catalog.get_prompt_and_profile(
            inputs.prompt_id, inputs.prompt_version, inputs.llm_profile
        )
        if isinstance(profile, PermanentStepError):
            raise profile
        self.govern(profile)
        if isinstance(prompt, StepError):
            raise prompt
        return profile, prompt

    def fallbacks(self, profile: Profile, prepare: Callable[[Profile], T]) -> Iterator[tuple[Profile, T]]:
        """``profile``'s usable fallbacks in order, each with what ``prepare`` makes of it (its
        request; a ``StepError`` there skips it too), read one at a time as the caller asks."""
        for fallback_id in profile.fallbacks:
            try:
                self.require_allowlisted(fallback_id)
                fallback = self.catalog.get_profile(fallback_id)
                self.govern(fallback)
                prepared = prepare(fallback)
            except StepError as skipped:
                self.log.warning(
                    "llm.fallback", fromProfile=profile.profile_id, toProfile=fallback_id, skipped=skipped.code
                )
                continue
            yield fallback, prepared

    def require_allowlisted(self, profile_id: str) -> None:
        if profile_id not in self.allowed_llm_profiles:
            self._violation(profile_id, None, "profile_not_in_allowlist")
            raise ProfileNotAllowed(f"llm profile '{profile_id}' is not in ALLOWED_LLM_PROFILES")

    def govern(self, profile: Profile) -> None:
        profile_id = profile.profile_id
        if not profile.enabled:
            self._violation(profile_id, profile.model, "profile_disabled")
            raise ProfileNotAllowed(f"llm profile '{profile_id}' is disabled")
        if profile.model not in self.allowed_models:
            self._violation(profile_id, profile.model, "model_not_in_allowlist")
            raise ModelNotAllowed(f"model '{profile.model}' of profile '{profile_id}' is not in ALLOWED_MODELS")

    def _violation(self, profile_id: str, model: str | None, reason: str) -> None:
        self.log.warning("governance.violation", profile=profile_id, model=model, reason=reason)
