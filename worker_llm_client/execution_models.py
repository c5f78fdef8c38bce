"""Plain values of executing a step: the claim, its inputs, prompt and profile, the LLM call and
its result, the stored artifact. No I/O, no google types.

Kept apart from ``models.py`` for cold start: each frozen dataclass costs about a millisecond to
create on import, and a cold instance that only receives no-op events (our own writes re-trigger
the function) needs none of these. The no-op path (``main.py``, ``event_handler``, event decoding,
step selection, transitions) imports only ``models.py``, and this module only under
``TYPE_CHECKING``; ``tests/unit/test_main_entrypoint.py`` checks that ``import main`` leaves it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, get_args

from worker_llm_client.models import Step

DEFAULT_REPAIR_ATTEMPTS = 1
# gemini: the Gemini Developer API; vertex: Vertex AI (ADC); openai: the OpenAI API; anthropic: the
# Anthropic API; anthropic_vertex: Claude on Vertex AI (ADC); openai_compatible: any Chat Completions
# endpoint (the profile's ``endpoint``)
Provider = Literal["gemini", "vertex", "openai", "anthropic", "anthropic_vertex", "openai_compatible"]
PROVIDERS: tuple[Provider, ...] = get_args(Provider)
# how an openai_compatible endpoint takes the schema: OpenAI's json_schema response format; llama.cpp's
# {"type": "json_object", "schema": ...}; or plain JSON mode (the schema only in the instructions)
StructuredOutput = Literal["json_schema", "json_object_schema", "json_object"]
Role = Literal["user", "model"]  # who said a turn of the conversation


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
    deadline: float = float("inf")  # monotonic time by which the step's work must be done
    salvage: bool = False  # the last attempt's lease expired: only its finished report may be used


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
class LongContextPricing:
    """Above ``threshold_tokens`` of prompt, the whole request is billed at these rates."""

    threshold_tokens: int
    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class Pricing:
    """USD per million tokens, as read on ``as_of`` (a date): thinking tokens are billed as
    output, cached input at ``cached_input_per_mtok`` (the input rate when absent)."""

    input_per_mtok: float
    output_per_mtok: float
    as_of: str
    cached_input_per_mtok: float | None = None
    long_context: LongContextPricing | None = None


@dataclass(frozen=True)
class Endpoint:
    """Where an ``openai_compatible`` profile's requests go, and what that endpoint enforces."""

    base_url: str
    structured_output: StructuredOutput = "json_schema"
    api_key_env: str | None = None  # the env var holding its key (a Secret Manager mount); None: no key


@dataclass(frozen=True)
class Profile:
    profile_id: str
    provider: Provider
    model: str
    version: int
    enabled: bool
    generation: GenerationSettings = GenerationSettings()
    safety_settings: tuple[SafetySetting, ...] = ()
    timeout_seconds: float | None = None
    repair_attempts: int = DEFAULT_REPAIR_ATTEMPTS
    pricing: Pricing | None = None
    secrets_policy: Literal["redact", "reject"] = "redact"  # credentials found in vars: see core/secret_scan.py
    endpoint: Endpoint | None = None  # openai_compatible only
    fallbacks: tuple[str, ...] = ()  # profile ids tried in order when this model stays unavailable

    @property
    def structured_output(self) -> StructuredOutput | None:
        """What the endpoint enforces (``openai_compatible``); None without an endpoint."""
        return self.endpoint.structured_output if self.endpoint is not None else None


@dataclass(frozen=True)
class Turn:
    role: Role
    text: str


# how a provider receives the report's schema (core/schema_dialects.py compiles it)
Dialect = Literal["gemini", "openai_strict", "openai", "anthropic", "json_object_schema", "json_object"]


@dataclass(frozen=True)
class WireSchema:
    """The prompt's schema as one provider takes it; the reply is still validated locally against
    the full schema. ``schema`` None: JSON mode, the schema goes into the instructions only."""

    dialect: Dialect
    schema: Mapping[str, Any] | None
    strict: bool = False  # the provider enforces ``schema`` exactly (OpenAI strict mode)
    nulls_added: bool = False  # optional properties were sent required-and-nullable: drop those nulls
    unenforced: tuple[str, ...] = ()  # "keyword at $.path" the provider will not enforce


@dataclass(frozen=True)
class LlmRequest:
    """Everything sent to the model for one call: the conversation so far and its settings."""

    provider: Provider
    model: str
    system_instruction: str | None
    contents: tuple[Turn, ...]
    response_schema: Mapping[str, Any]
    generation: GenerationSettings
    safety_settings: tuple[SafetySetting, ...]
    timeout_seconds: float | None
    endpoint: Endpoint | None = None  # openai_compatible only
    wire_schema: WireSchema | None = None  # None: the adapter sends ``response_schema`` as its dialect takes it

    @property
    def structured_output(self) -> StructuredOutput | None:
        """What the endpoint enforces (``openai_compatible``); None without an endpoint."""
        return self.endpoint.structured_output if self.endpoint is not None else None


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
