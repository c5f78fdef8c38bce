"""What the use case needs from the outside world. Small enough to fake with a function."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

from worker_llm_client.errors import PermanentStepError, StepError
from worker_llm_client.execution_models import LlmRequest, LlmResult, Profile, Prompt, StoredArtifact
from worker_llm_client.models import Patch, RunSnapshot, Written


class RunStore(Protocol):
    def get_run(self, run_id: str) -> RunSnapshot | None: ...

    def write_if_unchanged(self, run_id: str, update_time: datetime, patch: Patch) -> Written:
        """Write ``patch`` only if the run is unchanged since ``update_time``. ``UNCERTAIN``: the
        precondition failed on a retry of the commit, so an earlier try may have landed (read to know)."""
        ...

    def finalize(
        self,
        run_id: str,
        step_id: str,
        token: str,
        patch: Patch,
        retried: bool = False,
        follow: FollowOn | None = None,
    ) -> bool:
        """Atomically: write ``patch`` (plus the run's new ``executor.wakeAt``) only if the
        step is RUNNING under ``token``. ``retried``: an earlier call with this very patch failed
        and may have landed; if the run shows it did, that counts as written. ``follow``: more to
        write in the same write, planned on the run as the write leaves it (the next claims)."""
        ...

    def due_runs(self, now: datetime, limit: int) -> list[str]:
        """Ids of runs whose ``executor.wakeAt`` has come, earliest first (one indexed query)."""
        ...

    def overdue(self, due_by: datetime) -> tuple[int, datetime | None]:
        """How many runs have ``executor.wakeAt <= due_by``, and the earliest such ``wakeAt``
        (a count and a one-document read on the same index)."""
        ...


class FollowOn(Protocol):
    """What a finalize's write also carries: claims planned on the run as that write leaves it."""

    def plan(self, run: RunSnapshot) -> Patch:
        """The patch to add, planned on ``run`` (the finalize applied); may be called once per try."""
        ...

    def landed(self, run: RunSnapshot) -> None:
        """The write carrying the last planned patch landed; ``run`` is the run as it left it."""
        ...


class CatalogStore(Protocol):
    def get_prompt(self, prompt_id: str, version: int | None) -> Prompt: ...

    def get_profile(self, profile_id: str) -> Profile: ...

    def get_prompt_and_profile(
        self, prompt_id: str, version: int | None, profile_id: str
    ) -> tuple[Prompt | StepError, Profile | PermanentStepError]:
        """Both in one read where the store can. A missing or malformed document is returned as its
        permanent error (the caller decides which to raise first); an outage is raised, except
        one reading only the prompt while the profile is at hand (a cache), which is returned."""
        ...


class ArtifactStore(Protocol):
    def find(self, object_name: str) -> StoredArtifact | None: ...

    def put(self, object_name: str, data: bytes, metadata: Mapping[str, str]) -> StoredArtifact:
        """Create the object if absent; an existing one is returned with ``created=False``."""
        ...


class LlmClient(Protocol):
    def generate(self, request: LlmRequest) -> LlmResult: ...


class Clock(Protocol):
    def now(self) -> datetime: ...
