"""The catalog's documents (``prompts/``, ``llm_profiles/``), validated into our models.

Pydantic does the field-by-field checking so a malformed document yields a message naming the
bad field; unknown fields are ignored so newer documents do not break older workers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError, ValidationInfo, model_validator

from worker_llm_client.config import PROVIDER_KEY_ENVS
from worker_llm_client.execution_models import (
    DEFAULT_REPAIR_ATTEMPTS,
    Endpoint,
    GenerationSettings,
    LongContextPricing,
    Pricing,
    Profile,
    Prompt,
    Provider,
    SafetySetting,
    StructuredOutput,
)

PROMPTS = "prompts"  # the catalog's Firestore collections
PROFILES = "llm_profiles"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class GenerationDoc(_Doc):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, alias="topP", ge=0, le=1)
    top_k: int | None = Field(default=None, alias="topK", ge=1)
    max_output_tokens: int | None = Field(default=None, alias="maxOutputTokens", ge=1)
    seed: int | None = None
    thinking_budget: int | None = Field(default=None, alias="thinkingBudget", ge=-1)


class SafetyDoc(_Doc):
    category: str
    threshold: str


Rate = Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)]  # USD per million tokens


class LongContextDoc(_Doc):
    threshold_tokens: PositiveInt = Field(alias="thresholdTokens")
    input_per_mtok: Rate = Field(alias="inputPerMTok")
    output_per_mtok: Rate = Field(alias="outputPerMTok")


class PricingDoc(_Doc):
    input_per_mtok: Rate = Field(alias="inputPerMTok")
    output_per_mtok: Rate = Field(alias="outputPerMTok")
    cached_input_per_mtok: Rate | None = Field(default=None, alias="cachedInputPerMTok")
    as_of: str = Field(alias="asOf", pattern=r"^\d{4}-\d{2}-\d{2}$")  # when the prices were read
    long_context: LongContextDoc | None = Field(default=None, alias="longContext")

    def to_pricing(self) -> Pricing:
        tier = self.long_context
        long_context = LongContextPricing(**tier.model_dump()) if tier is not None else None
        return Pricing(self.input_per_mtok, self.output_per_mtok, self.as_of, self.cached_input_per_mtok, long_context)


MAX_FALLBACKS = 3
# the key of an openai_compatible endpoint: a *_API_KEY variable, never one of the first-party
# providers' keys (a profile must not be able to send those to another host)
FIRST_PARTY_KEYS = frozenset(PROVIDER_KEY_ENVS.values())
ProfileId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^/]+$")]


class EndpointDoc(_Doc):
    base_url: str = Field(alias="baseUrl", pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$", max_length=2048)
    api_key_env: str | None = Field(default=None, alias="apiKeyEnv", pattern=r"^[A-Z][A-Z0-9_]*_API_KEY$")
    structured_output: StructuredOutput = Field(default="json_schema", alias="structuredOutput")

    @model_validator(mode="after")
    def _own_key(self) -> EndpointDoc:
        if self.api_key_env in FIRST_PARTY_KEYS:
            raise ValueError(f"apiKeyEnv may not name {self.api_key_env}: it belongs to its provider")
        return self


class ProfileDoc(_Doc):
    provider: Provider
    model: str = Field(min_length=1)
    version: PositiveInt
    enabled: bool = True
    generation: GenerationDoc = GenerationDoc()
    safety_settings: list[SafetyDoc] = Field(default_factory=list, alias="safetySettings")
    timeout_seconds: float | None = Field(default=None, alias="timeoutSeconds", gt=0)
    repair_attempts: int = Field(default=DEFAULT_REPAIR_ATTEMPTS, alias="repairAttempts", ge=0, le=5)
    pricing: PricingDoc | None = None
    secrets_policy: Literal["redact", "reject"] = Field(default="redact", alias="secretsPolicy")
    endpoint: EndpointDoc | None = None
    fallbacks: list[ProfileId] = Field(default_factory=list, max_length=MAX_FALLBACKS)

    @model_validator(mode="after")
    def _endpoint_and_fallbacks(self, info: ValidationInfo) -> ProfileDoc:
        if (self.provider == "openai_compatible") != (self.endpoint is not None):
            raise ValueError("endpoint is required for provider openai_compatible, and only for it")
        if len(set(self.fallbacks)) != len(self.fallbacks):
            raise ValueError("fallbacks lists a profile twice")
        if isinstance(info.context, Mapping) and info.context.get("profile_id") in self.fallbacks:
            raise ValueError("fallbacks lists the profile itself")
        return self

    def to_profile(self, profile_id: str) -> Profile:
        return Profile(
            profile_id=profile_id,
            provider=self.provider,
            model=self.model,
            version=self.version,
            enabled=self.enabled,
            generation=GenerationSettings(**self.generation.model_dump()),
            safety_settings=tuple(SafetySetting(s.category, s.threshold) for s in self.safety_settings),
            timeout_seconds=self.timeout_seconds,
            repair_attempts=self.repair_attempts,
            pricing=self.pricing.to_pricing() if self.pricing is not None else None,
            secrets_policy=self.secrets_policy,
            endpoint=Endpoint(**self.endpoint.model_dump()) if self.endpoint is not None else None,
            fallbacks=tuple(self.fallbacks),
        )


class PromptDoc(_Doc):
    version: PositiveInt
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    template: str
    system_instruction: str = Field(default="", alias="systemInstruction")
    output_schema: str = Field(alias="outputSchema", min_length=2)
    description: str = ""

    def to_prompt(self, prompt_id: str) -> Prompt:
        return Prompt(
            prompt_id=prompt_id,
            version=self.version,
            sha256=self.sha256,
            template=self.template,
            system_instruction=self.system_instruction or "",
            output_schema=self.output_schema,
        )


def validation_summary(exc: ValidationError) -> str:
    """``field: problem`` pairs; pydantic's input values are left out on purpose."""
    problems = [f"{'.'.join(map(str, e['loc'])) or '<document>'}: {e['msg']}" for e in exc.errors()]
    return "; ".join(problems[:5])


def parse_profile(profile_id: str, data: Mapping[str, Any]) -> Profile:
    return ProfileDoc.model_validate(dict(data), context={"profile_id": profile_id}).to_profile(profile_id)


def parse_prompt(prompt_id: str, data: Mapping[str, Any]) -> Prompt:
    return PromptDoc.model_validate(dict(data)).to_prompt(prompt_id)
