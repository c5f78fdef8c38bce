"""In-memory implementations of the ports. Tests assert on their state, not on calls made."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from tests.builders import T0
from worker_llm_client.core.document_size import document_size
from worker_llm_client.core.transitions import Delete
from worker_llm_client.core.wake import apply_patch, with_wake
from worker_llm_client.errors import PermanentStepError, ProfileNotFound, PromptNotFound, RunTooLarge, permanent_or
from worker_llm_client.execution_models import LlmRequest, LlmResult, Profile, Prompt, StoredArtifact, Usage
from worker_llm_client.models import RUNS, Patch, RunSnapshot, Written, run_from_document
from worker_llm_client.ports import FollowOn


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class Monotonic:
    """A ``time.monotonic`` stand-in: ``now`` seconds, moved by the test."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class InMemoryRunStore:
    """Documents with a Firestore-like update_time that moves on every write.

    ``faults`` scripts what the next finalizes raise (one exception each, in order), and
    ``max_document_bytes`` makes a write that would grow a document past it raise RunTooLarge,
    as Firestore's 1 MiB limit does.
    """

    def __init__(self, clock: Callable[[], datetime] = lambda: T0, max_document_bytes: int | None = None) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.update_times: dict[str, datetime] = {}
        self.writes = 0
        self.reads = 0
        self.clock, self.max_document_bytes = clock, max_document_bytes
        self.faults: list[Exception] = []
        self._lock = threading.Lock()
        self._tick = 0

    def put(self, run_id: str, data: dict[str, Any]) -> RunSnapshot:
        with self._lock:
            self.docs[run_id] = copy.deepcopy(data)
            self._touch(run_id)
            return self._snapshot(run_id)

    def _touch(self, run_id: str) -> None:
        self._tick += 1
        self.update_times[run_id] = T0 + timedelta(microseconds=self._tick)

    def _snapshot(self, run_id: str) -> RunSnapshot:
        document = copy.deepcopy(self.docs[run_id])
        size = document_size((RUNS, run_id), document)  # the real store measures a bound: here, the size
        return run_from_document(run_id, document, self.update_times[run_id], size_bound=size)

    def step(self, run_id: str, step_id: str) -> dict[str, Any]:
        return self.docs[run_id]["steps"][step_id]  # type: ignore[no-any-return]

    def get_run(self, run_id: str) -> RunSnapshot | None:
        with self._lock:
            self.reads += 1
            return self._snapshot(run_id) if run_id in self.docs else None

    def write_if_unchanged(self, run_id: str, update_time: datetime, patch: Patch) -> Written:
        with self._lock:
            if run_id not in self.docs or self.update_times[run_id] != update_time:
                return Written.CONFLICT
            self._apply(run_id, patch)
            return Written.LANDED

    def finalize(
        self,
        run_id: str,
        step_id: str,
        token: str,
        patch: Patch,
        retried: bool = False,
        follow: FollowOn | None = None,
    ) -> bool:
        with self._lock:
            if self.faults:
                raise self.faults.pop(0)
            step = self.docs.get(run_id, {}).get("steps", {}).get(step_id, {})
            if step.get("status") != "RUNNING" or step.get("claim", {}).get("token") != token:
                return False
            run = self._snapshot(run_id)
            after = apply_patch(run, patch)
            extra = follow.plan(after) if follow is not None else {}
            self._apply(run_id, with_wake(run, {**patch, **extra}, self.clock()))
            if follow is not None:
                follow.landed(apply_patch(after, extra))
            return True

    def due_runs(self, now: datetime, limit: int) -> list[str]:
        with self._lock:
            due = [
                (doc["executor"]["wakeAt"], run_id)
                for run_id, doc in self.docs.items()
                if doc.get("executor", {}).get("wakeAt") and doc["executor"]["wakeAt"] <= now
            ]
            return [run_id for _, run_id in sorted(due)[:limit]]

    def overdue(self, due_by: datetime) -> tuple[int, datetime | None]:
        wakes = [w for doc in self.docs.values() if (w := doc.get("executor", {}).get("wakeAt")) and w <= due_by]
        return len(wakes), min(wakes, default=None)

    def _apply(self, run_id: str, patch: Patch) -> None:
        doc = copy.deepcopy(self.docs[run_id])
        self._patch(doc, patch)
        if self.max_document_bytes is not None and document_size(("flow_runs", run_id), doc) > self.max_document_bytes:
            raise RunTooLarge(f"run '{run_id}' cannot hold this write: Firestore's document limits")
        self.docs[run_id] = doc
        self.writes += 1
        self._touch(run_id)

    @staticmethod
    def _patch(doc: dict[str, Any], patch: Patch) -> None:
        for path, value in patch.items():
            node = doc
            for key in path[:-1]:
                node = node.setdefault(key, {})
            if value is Delete.FIELD:
                node.pop(path[-1], None)
            else:
                node[path[-1]] = copy.deepcopy(value)


class FakeCatalog:
    def __init__(self, prompts: list[Prompt] = (), profiles: list[Profile] = ()) -> None:  # type: ignore[assignment]
        self.prompts = {(p.prompt_id, p.version): p for p in prompts}
        self.current = {p.prompt_id: p.version for p in prompts}
        self.profiles = {p.profile_id: p for p in profiles}

    def get_prompt(self, prompt_id: str, version: int | None) -> Prompt:
        key = (prompt_id, version if version is not None else self.current.get(prompt_id, -1))
        if key not in self.prompts:
            raise PromptNotFound(f"prompt '{prompt_id}' does not exist")
        return self.prompts[key]

    def get_profile(self, profile_id: str) -> Profile:
        if profile_id not in self.profiles:
            raise ProfileNotFound(f"llm profile '{profile_id}' does not exist")
        return self.profiles[profile_id]

    def get_prompt_and_profile(
        self, prompt_id: str, version: int | None, profile_id: str
    ) -> tuple[Prompt | PermanentStepError, Profile | PermanentStepError]:
        return (
            permanent_or(lambda: self.get_prompt(prompt_id, version)),
            permanent_or(lambda: self.get_profile(profile_id)),
        )


class InMemoryArtifactStore:
    def __init__(self, bucket: str = "artifacts") -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.uploads = 0
        self._lock = threading.Lock()

    def _stored(self, name: str, created: bool) -> StoredArtifact:
        data, metadata = self.objects[name]
        return StoredArtifact(f"gs://{self.bucket}/{name}", metadata["sha256"], len(data), metadata, created)

    def find(self, object_name: str) -> StoredArtifact | None:
        with self._lock:
            return self._stored(object_name, False) if object_name in self.objects else None

    def put(self, object_name: str, data: bytes, metadata: Mapping[str, str]) -> StoredArtifact:
        with self._lock:
            self.uploads += 1
            if object_name in self.objects:
                return self._stored(object_name, False)
            self.objects[object_name] = (data, dict(metadata))
            return self._stored(object_name, True)


def reply(text: str = '{"title": "t", "severity": "low", "findings": ["a"]}', **kwargs: Any) -> LlmResult:
    values: dict[str, Any] = {
        "text": text,
        "finish_reason": "STOP",
        "block_reason": None,
        "model_version": "gemini-2.5-flash-001",
        "response_id": "resp-1",
        "usage": Usage(10, 5, 2, 0, 17),
    }
    values.update(kwargs)
    return LlmResult(**values)


class FakeLlm:
    """Answers with ``respond(request)`` (a reply or an exception to raise); records requests."""

    def __init__(self, respond: Callable[[LlmRequest], LlmResult | Exception] | None = None) -> None:
        self.respond = respond or (lambda request: reply())
        self.requests: list[LlmRequest] = []
        self._lock = threading.Lock()

    def generate(self, request: LlmRequest) -> LlmResult:
        with self._lock:
            self.requests.append(request)
        answer = self.respond(request)
        if isinstance(answer, Exception):
            raise answer
        return answer
