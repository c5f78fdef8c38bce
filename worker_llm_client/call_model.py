"""Calling the model for one attempt: retries, repairs and the attempt's accounting.

``ModelCaller.call_and_validate`` sends a request and returns the validated report, resending it
with a repair turn while the profile's ``repairAttempts`` last. Transient errors (429, 5xx,
timeouts) are retried here, in the one retry loop (the SDKs' own retries are off), bounded by the
retry budget and by the time left in the invocation. Every request sent is counted in the
attempt's ``AttemptLedger``, whatever comes back; the ledger follows a fallback (``fall_back``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import tenacity

from worker_llm_client import tracing
from worker_llm_client.config import DEFAULT_MODEL_RETRY_BUDGET_SECONDS
from worker_llm_client.core.cost import add_cost, request_cost
from worker_llm_client.core.output_validation import OutputSchema, repair_instruction, reply_outcome, validate_reply
from worker_llm_client.core.retry_policy import give_up, model_retry_wait
from worker_llm_client.errors import Internal, InvalidOutput, LlmRateLimited, LlmTimeout, LlmUnavailable, StepError
from worker_llm_client.execution_models import LlmRequest, LlmResult, Profile, Prompt, Turn, Usage
from worker_llm_client.model_gate import ModelGate
from worker_llm_client.observability import Logger, get_logger
from worker_llm_client.ports import LlmClient

MODEL_TRANSIENT = (LlmRateLimited, LlmUnavailable, LlmTimeout)
OK = "OK"  # an llm.call answered with a reply that may hold a report
GENAI_OPERATION = "generate_content"
# gen_ai.provider.name (OpenTelemetry GenAI conventions); an openai_compatible endpoint keeps our name
GENAI_PROVIDERS = {
    "gemini": "gcp.gemini",
    "vertex": "gcp.vertex_ai",
    "openai": "openai",
    "anthropic": "anthropic",
    "anthropic_vertex": "gcp.vertex_ai",
}


@dataclass(frozen=True)
class ModelRetry:
    """What the retry loop needs from outside, injectable: tests pass ``sleep=slept.append``."""

    budget_seconds: float = DEFAULT_MODEL_RETRY_BUDGET_SECONDS  # waiting allowed per model call
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random


@dataclass
class AttemptLedger:
    """What one attempt cost and yielded: feeds ``outputs``, the artifact's metadata and the
    failed attempt's ``llmCalls``/``usage``."""

    prompt: Prompt
    profile: Profile
    llm_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    latency_ms: int = 0
    result: LlmResult | None = None
    replies: list[LlmResult] = field(default_factory=list)
    cost_usd: float | None = None  # every request's, from its profile's pricing (None: nothing priced)
    secrets_redacted: int = 0  # credentials replaced in vars before rendering
    fallback_from: str | None = None  # the step's own profile, once a fallback serves it

    def __post_init__(self) -> None:
        if self.profile.pricing is not None:
            self.cost_usd = 0.0

    def bill(self, error: StepError) -> None:
        """Put what the failed attempt cost on its error (the ``step.failed`` line reports it)."""
        error.llm_calls, error.usage, error.cost_usd = self.llm_calls, self.usage.as_outputs(), self.cost_usd

    def fall_back(self, profile: Profile) -> None:
        """``profile`` serves from now on: its requests are priced at its rates."""
        self.fallback_from = self.fallback_from or self.profile.profile_id
        self.profile, self.result = profile, None
        if profile.pricing is not None and self.cost_usd is None:
            self.cost_usd = 0.0

    def charge(self, usage: Usage) -> float | None:
        """Account one request's tokens; its cost."""
        cost = request_cost(usage, self.profile.pricing)
        self.usage += usage
        self.cost_usd = add_cost(self.cost_usd, cost)
        return cost


class ModelCaller:
    def __init__(
        self,
        llm: LlmClient,
        retry: ModelRetry,
        max_inflight: int,
        timer: Callable[[], float] = time.perf_counter,
        log: Logger | None = None,
    ) -> None:
        self.llm, self.retry, self.timer = llm, retry, timer
        self.gate = ModelGate(max_inflight, sleep=retry.sleep, monotonic=retry.monotonic)
        self.log = log or get_logger()

    def call_and_validate(
        self, request: LlmRequest, ledger: AttemptLedger, output_schema: OutputSchema, deadline: float
    ) -> Any:
        """Call, validate, and resend with a repair turn while the profile's budget lasts.

        Blocked and truncated replies are never repaired; every request's usage is summed.
        """
        repairs_allowed, repairs = ledger.profile.repair_attempts, 0  # transient retries do not count
        while True:
            result = self._call_with_retries(request, ledger, deadline)
            try:
                return validate_reply(result, output_schema, nulls_added=_nulls_added(request))
            except InvalidOutput as error:
                repair = repairs < repairs_allowed
                self.log.warning("output.invalid", code=error.code, reason=error.message, repair=repair)
                if not repair:
                    raise
                repairs += 1
                request = replace(request, contents=(*request.contents, *_repair_turns(result, error)))
                self.log.info("llm.retry", reason="repair", repair=repairs, of=repairs_allowed)

    def time_left(self, deadline: float) -> bool:
        return deadline - self.retry.monotonic() > 0

    def _call_with_retries(self, request: LlmRequest, ledger: AttemptLedger, deadline: float) -> LlmResult:
        """The one retry loop for transient model errors, bounded by the retry budget and by the
        time left in the invocation."""
        give_up_at = min(self.retry.monotonic() + self.retry.budget_seconds, deadline)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(MODEL_TRANSIENT),
            wait=self._retry_wait,
            stop=partial(self._retry_stop, give_up_at),
            sleep=self.retry.sleep,
            reraise=True,
        )
        result: LlmResult = retrying(self._attempt, request, ledger, deadline)
        return result

    def _attempt(self, request: LlmRequest, ledger: AttemptLedger, deadline: float) -> LlmResult:
        """One request, only if the invocation still has time for it, and no longer than that."""
        left = deadline - self.retry.monotonic()
        if left <= 0:
            raise LlmTimeout("no time left in this invocation for another model request")
        if request.timeout_seconds is None or left < request.timeout_seconds:
            request = replace(request, timeout_seconds=left) if left != float("inf") else request
        return self._call(request, ledger, max_wait=min(self.retry.budget_seconds, left))

    def _retry_wait(self, state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        return model_retry_wait(state.attempt_number, getattr(error, "retry_after", None), self.retry.jitter())

    def _retry_stop(self, give_up_at: float, state: tenacity.RetryCallState) -> bool:
        error = state.outcome.exception() if state.outcome else None
        time_left = give_up_at - self.retry.monotonic()
        reason = give_up(state.attempt_number - 1, state.upcoming_sleep, time_left)
        code = getattr(error, "code", None)
        if reason is None:
            self.log.warning(
                "llm.retry", code=code, waitSeconds=round(state.upcoming_sleep, 3), retry=state.attempt_number
            )
        else:
            self.log.warning("llm.retry", code=code, gaveUp=reason, retries=state.attempt_number - 1)
        return reason is not None

    def _call(self, request: LlmRequest, ledger: AttemptLedger, max_wait: float) -> LlmResult:
        """One request through the gate: one ``llm.call`` line and one span, whatever comes back."""
        with self.gate.admit(request.model, max_wait=max_wait) as gate:
            ledger.llm_calls += 1  # a request sent counts, whatever comes back
            call = ledger.llm_calls
            self.log.info("llm.request", model=request.model, provider=request.provider, call=call, **gate.as_log())
            with tracing.span(f"{GENAI_OPERATION} {request.model}", _genai_request(request), client=True) as span:
                result: LlmResult | None = None
                started, outcome = self.timer(), OK
                try:
                    result = self.llm.generate(request)
                    outcome = reply_outcome(result)
                except StepError as error:
                    outcome = error.code
                    if isinstance(error, LlmRateLimited):  # spare the model for the whole instance
                        self.gate.cool_down(request.model, error.retry_after)
                    raise
                except Exception:
                    outcome = Internal.code
                    raise
                finally:
                    self._account(request, ledger, call, outcome, int((self.timer() - started) * 1000), result, span)
        if result is None:  # only if a context manager above swallowed generate()'s exception
            raise Internal("the model request ended without a reply or an error")
        ledger.result = result
        ledger.replies.append(result)
        return result

    def _account(
        self,
        request: LlmRequest,
        ledger: AttemptLedger,
        call: int,
        outcome: str,
        latency_ms: int,
        result: LlmResult | None,
        span: tracing.SpanHandle,
    ) -> None:
        usage = result.usage if result is not None else Usage()
        cost = ledger.charge(usage)
        ledger.latency_ms += latency_ms
        self.log.info(
            "llm.call",
            outcome=outcome,
            provider=request.provider,
            model=request.model,
            llmProfile=ledger.profile.profile_id,
            call=call,
            latencyMs=latency_ms,
            modelVersion=result.model_version if result is not None else None,
            finishReason=result.finish_reason if result is not None else None,
            costUsd=cost,
            **usage.as_outputs(),
        )
        span.set(**_genai_response(result, usage), **{"flow.cost_usd": cost})
        if outcome != OK:
            span.fail(outcome)


def _genai_request(request: LlmRequest) -> dict[str, tracing.AttributeValue]:
    """The OpenTelemetry GenAI attributes of a request: names and settings, never content."""
    return {
        "gen_ai.operation.name": GENAI_OPERATION,
        "gen_ai.provider.name": GENAI_PROVIDERS.get(request.provider, request.provider),
        "gen_ai.request.model": request.model,
        "gen_ai.request.temperature": request.generation.temperature,
        "gen_ai.request.max_tokens": request.generation.max_output_tokens,
        "gen_ai.request.seed": request.generation.seed,
    }


def _genai_response(result: LlmResult | None, usage: Usage) -> dict[str, tracing.AttributeValue]:
    return {
        "gen_ai.response.model": result.model_version if result is not None else None,
        "gen_ai.response.id": result.response_id if result is not None else None,
        "gen_ai.response.finish_reasons": [result.finish_reason] if result and result.finish_reason else None,
        "gen_ai.usage.input_tokens": usage.prompt_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens + usage.thoughts_tokens,
    }


def _nulls_added(request: LlmRequest) -> bool:
    """The provider was sent optional properties as required-and-nullable: drop those nulls."""
    return request.wire_schema is not None and request.wire_schema.nulls_added


def _repair_turns(result: LlmResult, error: InvalidOutput) -> tuple[Turn, ...]:
    """The model's rejected reply (when it had text) and our request to correct it."""
    previous = (Turn("model", result.text),) if result.text and result.text.strip() else ()
    return (*previous, Turn("user", repair_instruction(error)))
