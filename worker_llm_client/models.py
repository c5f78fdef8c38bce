"""Plain values shared by the core, the use case and the adapters. No I/O, no google types.

Field paths are tuples of segments (``("steps", "weekly-report.v2", "status")``); only the
Firestore adapter turns them into quoted paths, so step ids may contain any character.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

LLM_REPORT = "LLM_REPORT"
RUN_CANCELLED = "CANCELLED"
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_REPAIR_ATTEMPTS = 1

FieldPathTuple = tuple[str, ...]
Patch = Mapping[FieldPathTuple, Any]


class StepStatus(StrEnum):
    PENDING = "PENDING"
    READY = "READY"
    RUNNING = "RUNNING"
    RETRY_WAIT = "RETRY_WAIT"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Step:
    """One entry of ``flow_runs/{runId}.steps`` as the executor sees it."""

    step_id: str
    type: str
    status: str
    data: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def attempt(self) -> int:
        value = self.data.get("attempt", 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def claim(self) -> Mapping[str, Any]:
        value = self.data.get("claim")
        return value if isinstance(value, Mapping) else {}

    @property
    def claim_token(self) -> str | None:
        token = self.claim.get("token")
        return token if isinstance(token, str) else None


@dataclass(frozen=True)
class RunSnapshot:
    """A run document at one point in time; ``update_time`` is the precondition for claims."""

    run_id: str
    status: str
    steps: Mapping[str, Step]
    update_time: datetime | None
    wake_at: datetime | None = None  # executor.wakeAt as stored


@dataclass(frozen=True)
class Claim:
    token: str
    worker: str
    claimed_at: datetime
    lease_expires_at: datetime


@dataclass(frozen=True)
class ClaimedStep:
    """A step this invocation holds: the snapshot it was claimed from plus the claim itself."""

    run_id: str
    step: Step
    attempt: int
    claim: Claim
    deadline: float = float("inf")  # monotonic time by which this invocation must have finalized


@dataclass(frozen=True)
class StepInputs:
    prompt_id: str
    prompt_version: int | None
    llm_profile: str
    vars: Mapping[str, Any]
    max_attempts: int


@dataclass(frozen=True)
class Prompt:
    prompt_id: str
    version: int
    sha256: str
    template: str
    system_instruction: str
    output_schema: str


@dataclass(frozen=True)
class GenerationSettings:
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_output_tokens: int | None = None
    seed: int | None = None
    thinking_budget: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class SafetySetting:
    category: str
    threshold: str


@dataclass(frozen=True)
class Profile:
    profile_id: str
    provider: str
    model: str
    version: int
    enabled: bool
    generation: GenerationSettings = GenerationSettings()
    safety_settings: tuple[SafetySetting, ...] = ()
    timeout_seconds: float | None = None
    repair_attempts: int = DEFAULT_REPAIR_ATTEMPTS


@dataclass(frozen=True)
class Turn:
    role: str  # "user" | "model"
    text: str


@dataclass(frozen=True)
class LlmRequest:
    """Everything sent to the model for one call: the conversation so far and its settings."""

    provider: str
    model: str
    system_instruction: str | None
    contents: tuple[Turn, ...]
    response_schema: Mapping[str, Any]
    generation: GenerationSettings
    safety_settings: tuple[SafetySetting, ...]
    timeout_seconds: float | None


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    thoughts_tokens: int = 0
    cached_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(vars(self).values(), vars(other).values(), strict=True)))

    def as_outputs(self) -> dict[str, int]:
        return {
            "promptTokens": self.prompt_tokens,
            "outputTokens": self.output_tokens,
            "thoughtsTokens": self.thoughts_tokens,
            "cachedTokens": self.cached_tokens,
            "totalTokens": self.total_tokens,
        }


@dataclass(frozen=True)
class LlmResult:
    """The model's reply, unclassified: the core decides whether it is a report."""

    text: str | None
    finish_reason: str | None
    block_reason: str | None
    model_version: str | None
    response_id: str | None
    usage: Usage


@dataclass(frozen=True)
class StoredArtifact:
    uri: str
    sha256: str
    size_bytes: int
    metadata: Mapping[str, str]
    created: bool


def run_from_document(
    run_id: str, data: Mapping[str, Any], update_time: datetime | None, wake_at: datetime | None = None
) -> RunSnapshot:
    """A run snapshot from a decoded document; malformed steps keep their data for INVALID_STEP."""
    raw_steps = data.get("steps")
    steps: dict[str, Step] = {}
    if isinstance(raw_steps, Mapping):
        for step_id, raw in raw_steps.items():
            body: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            steps[str(step_id)] = Step(
                step_id=str(step_id),
                type=str(body.get("type", "")),
                status=str(body.get("status", "")),
                data=body,
            )
    status = data.get("status")
    executor = data.get("executor")
    stored = executor.get("wakeAt") if isinstance(executor, Mapping) else None
    wake = stored if isinstance(stored, datetime) else wake_at
    return RunSnapshot(run_id, status if isinstance(status, str) else "", steps, update_time, wake)
