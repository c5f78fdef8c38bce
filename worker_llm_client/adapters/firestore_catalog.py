"""The catalog on Firestore: ``prompts/`` (and their ``versions/``) and ``llm_profiles/``.

A read that fails for a moment is ``StorageUnavailable`` (the step retries; the event is not
redelivered); a missing or malformed document is the step's ``PromptNotFound``/``ProfileNotFound``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.cloud import firestore
from pydantic import ValidationError

from worker_llm_client.adapters.firestore_errors import TRANSIENT_FIRESTORE
from worker_llm_client.catalog.documents import PROFILES, PROMPTS, parse_profile, parse_prompt, validation_summary
from worker_llm_client.errors import (
    PermanentStepError,
    ProfileNotFound,
    PromptNotFound,
    StorageUnavailable,
    permanent_or,
)
from worker_llm_client.execution_models import Profile, Prompt

T = TypeVar("T")
CATALOG_READ_TIMEOUT_SECONDS = 20.0
CATALOG_READ_RETRY = gretry.Retry(
    predicate=gretry.if_exception_type(gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError),
    initial=0.25,
    maximum=4.0,
    timeout=CATALOG_READ_TIMEOUT_SECONDS,
)


class FirestoreCatalog:
    def __init__(self, client: firestore.Client) -> None:
        self.client = client

    def _prompt(self, prompt_id: str, version: int | None) -> tuple[Any, str, Callable[[dict[str, Any]], Prompt]]:
        ref = self.client.collection(PROMPTS).document(prompt_id)
        if version is not None:
            ref = ref.collection("versions").document(str(version))
        label = f"prompt '{prompt_id}'" + (f" version {version}" if version is not None else "")
        return ref, label, lambda data: parse_prompt(prompt_id, data)

    def _profile(self, profile_id: str) -> tuple[Any, str, Callable[[dict[str, Any]], Profile]]:
        ref = self.client.collection(PROFILES).document(profile_id)
        return ref, f"llm profile '{profile_id}'", lambda data: parse_profile(profile_id, data)

    def get_prompt(self, prompt_id: str, version: int | None) -> Prompt:
        return _read_one(*self._prompt(prompt_id, version), PromptNotFound)

    def get_profile(self, profile_id: str) -> Profile:
        return _read_one(*self._profile(profile_id), ProfileNotFound)

    def get_prompt_and_profile(
        self, prompt_id: str, version: int | None, profile_id: str
    ) -> tuple[Prompt | PermanentStepError, Profile | PermanentStepError]:
        """One BatchGetDocuments for both documents."""
        prompt_ref, prompt_label, parse_prompt_data = self._prompt(prompt_id, version)
        profile_ref, profile_label, parse_profile_data = self._profile(profile_id)
        refs = [prompt_ref, profile_ref]
        label = f"{prompt_label} and {profile_label}"
        snaps = _fetch(
            label, lambda: self.client.get_all(refs, retry=CATALOG_READ_RETRY, timeout=CATALOG_READ_TIMEOUT_SECONDS)
        )
        by_path = {snap.reference.path: snap for snap in snaps}
        return (
            permanent_or(lambda: _parsed(by_path[prompt_ref.path], prompt_label, PromptNotFound, parse_prompt_data)),
            permanent_or(
                lambda: _parsed(by_path[profile_ref.path], profile_label, ProfileNotFound, parse_profile_data)
            ),
        )


def _read_one(ref: Any, label: str, parse: Callable[[dict[str, Any]], T], missing: type[PermanentStepError]) -> T:
    [snap] = _fetch(label, lambda: [ref.get(retry=CATALOG_READ_RETRY, timeout=CATALOG_READ_TIMEOUT_SECONDS)])
    return _parsed(snap, label, missing, parse)


def _fetch(label: str, read: Callable[[], Any]) -> list[Any]:
    """The snapshots ``read()`` returns; an outage is STORAGE_UNAVAILABLE (retryable), so the step
    waits instead of the event being redelivered."""
    try:
        return list(read())
    except TRANSIENT_FIRESTORE as exc:
        raise StorageUnavailable(f"reading {label} from Firestore failed: {type(exc).__name__}") from exc


def _parsed(snap: Any, label: str, missing: type[PermanentStepError], parse: Callable[[dict[str, Any]], T]) -> T:
    """A catalog document's value; absent or malformed is the step error ``missing``."""
    if not snap.exists:
        raise missing(f"{label} does not exist")
    try:
        return parse(snap.to_dict() or {})
    except ValidationError as exc:
        raise missing(f"{label} is malformed: {validation_summary(exc)}") from exc
