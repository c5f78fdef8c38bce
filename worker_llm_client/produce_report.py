"""Producing one report: resolve -> render -> call (with bounded repair) -> validate -> write.

Given a claimed step, ``ReportProducer.produce`` returns the contract's ``outputs`` or raises the
``StepError`` to record. Governance is checked before anything is read or sent; an identical
request's artifact is reused instead of calling the model; every request's cost is accounted.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import tenacity

from worker_llm_client.config import DEFAULT_MODEL_RETRY_BUDGET_SECONDS
from worker_llm_client.core.artifact_naming import artifact_object_name, request_fingerprint
from worker_llm_client.core.canonical import sha256_hex
from worker_llm_client.core.output_validation import load_schema, repair_instruction, report_bytes, validate_reply
from worker_llm_client.core.prompt_rendering import render
from worker_llm_client.core.retry_policy import give_up, model_retry_wait
from worker_llm_client.core.step_inputs import parse_inputs
from worker_llm_client.core.transitions import lease_expired_error
from worker_llm_client.errors import (
    Internal,
    InvalidOutput,
    LlmRateLimited,
    LlmTimeout,
    LlmTruncated,
    LlmUnavailable,
    ModelNotAllowed,
    PermanentStepError,
    ProfileNotAllowed,
    StepError,
)
from worker_llm_client.model_gate import ModelGate
from worker_llm_client.models import RunSnapshot
from worker_llm_client.observability import get_logger
from worker_llm_client.ports import ArtifactStore, ConfigStore, LlmClient
from worker_llm_client.report_models import (
    ClaimedStep,
    LlmRequest,
    LlmResult,
    Profile,
    Prompt,
    StepInputs,
    StoredArtifact,
    Turn,
    Usage,
)

MODEL_TRANSIENT = (LlmRateLimited, LlmUnavailable, LlmTimeout)


@dataclass(frozen=True)
class ModelRetry:
    """What the retry loop needs from outside, injectable: tests pass ``sleep=slept.append``."""

    budget_seconds: float = DEFAULT_MODEL_RETRY_BUDGET_SECONDS  # waiting allowed per model call
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    jitter: Callable[[], float] = random.random


@dataclass
class _Production:
    """What producing one report cost and yielded; feeds ``outputs`` and the artifact metadata."""

    prompt: Prompt
    profile: Profile
    llm_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    latency_ms: int = 0
    result: LlmResult | None = None
    replies: list[LlmResult] = field(default_factory=list)


class ReportProducer:
    def __init__(
        self,
        configs: ConfigStore,
        artifacts: ArtifactStore,
        llm: LlmClient,
        allowed_llm_profiles: frozenset[str],
        allowed_models: frozenset[str],
        timer: Callable[[], float] = time.perf_counter,
        retry: ModelRetry | None = None,
        max_inflight: int = 8,
    ) -> None:
        self.configs, self.artifacts, self.llm, self.timer = configs, artifacts, llm, timer
        self.allowed_llm_profiles, self.allowed_models = allowed_llm_profiles, allowed_models
        self.retry = retry or ModelRetry()
        self.gate = ModelGate(max_inflight, sleep=self.retry.sleep, monotonic=self.retry.monotonic)
        self.log = get_logger()

    def produce(self, run: RunSnapshot, claimed: ClaimedStep) -> dict[str, Any]:
        """The contract's ``outputs`` for a claimed step, or a ``StepError`` saying why not (an
        exception outside the tree becomes ``Internal``: nothing else leaves this method)."""
        try:
            return self._produce(run, claimed)
        except StepError:
            raise
        except Exception as exc:
            self.log.error("step.internal_error", where="preparing the request", exc_info=exc)
            raise Internal.from_exception(exc, "preparing the request") from exc

    def _produce(self, run: RunSnapshot, claimed: ClaimedStep) -> dict[str, Any]:
        inputs = parse_inputs(claimed.step, run.steps)
        profile, prompt = self._resolve(inputs)
        output_schema = load_schema(prompt.output_schema)
        rendered = render(prompt, inputs.vars)
        request = LlmRequest(
            provider=profile.provider,
            model=profile.model,
            system_instruction=rendered.system_instruction,
            contents=(Turn("user", rendered.user),),
            response_schema=output_schema.schema,
            generation=profile.generation,
            safety_settings=profile.safety_settings,
            timeout_seconds=profile.timeout_seconds,
        )
        name = artifact_object_name(claimed.run_id, claimed.step.step_id, request_fingerprint(prompt, profile, request))
        production = _Production(prompt, profile)
        existing = self.artifacts.find(name)
        if existing is not None:
            self.log.info("artifact.reused", gcsUri=existing.uri, reason="identical_request_replayed")
            return _outputs(existing, inputs, production, cached=True)
        if claimed.salvage:  # the last attempt's worker died before writing a report: nothing to salvage
            raise lease_expired_error(claimed.attempt)
        try:
            return self._report(name, claimed, inputs, request, production, output_schema)
        except StepError as error:
            error.llm_calls, error.usage = production.llm_calls, production.usage.as_outputs()
            raise
        except Exception as exc:  # outside our error tree: recorded as INTERNAL, the attempt's cost kept
            self.log.error("step.internal_error", where="producing the report", exc_info=exc)
            internal = Internal.from_exception(exc, "producing the report")
            internal.llm_calls, internal.usage = production.llm_calls, production.usage.as_outputs()
            raise internal from exc

    def _report(
        self,
        name: str,
        claimed: ClaimedStep,
        inputs: StepInputs,
        request: LlmRequest,
        production: _Production,
        output_schema: Any,
    ) -> dict[str, Any]:
        try:
            report = self._call_and_validate(request, production, output_schema, claimed.deadline)
        except (InvalidOutput, LlmTruncated) as error:
            raise self._keep_replies(error, debug_object_name(name, claimed.attempt), claimed, production) from error
        data = report_bytes(report)
        stored = self.artifacts.put(name, data, _metadata(claimed, inputs, production, sha256_hex(data)))
        event = "artifact.written" if stored.created else "artifact.reused"
        self.log.info(event, gcsUri=stored.uri, sizeBytes=stored.size_bytes)
        return _outputs(stored, inputs, production, cached=not stored.created)

    def _keep_replies(
        self, error: StepError, object_name: str, claimed: ClaimedStep, production: _Production
    ) -> StepError:
        """Keep the rejected replies for debugging next to where the report would be; the step's
        error message says where. Model text goes to that object only, never to Firestore or logs."""
        if not any(reply.text for reply in production.replies):
            return error
        envelope = {
            "note": "model replies rejected by validation: NOT a report",
            "runId": claimed.run_id,
            "stepId": claimed.step.step_id,
            "attempt": claimed.attempt,
            "code": error.code,
            "error": error.message,
            "replies": [
                {"call": call, "finishReason": reply.finish_reason, "responseId": reply.response_id, "text": reply.text}
                for call, reply in enumerate(production.replies, start=1)
            ],
        }
        data = json.dumps(envelope, indent=2).encode("utf-8")  # ASCII escapes: a lone surrogate still encodes
        try:
            kept = self.artifacts.put(
                object_name, data, {"runId": claimed.run_id, "code": error.code, "sha256": sha256_hex(data)}
            )
        except StepError as storage_error:  # keeping them is best effort: the output error is what counts
            self.log.warning("output.invalid", reason="replies_not_kept", code=storage_error.code)
            return error
        return _with_location(error, kept.uri)

    def _resolve(self, inputs: StepInputs) -> tuple[Profile, Prompt]:
        """The governed profile and the prompt, read together; the profile's problems come first
        (nothing is read for a profile outside the allowlist)."""
        profile_id = inputs.llm_profile
        if profile_id not in self.allowed_llm_profiles:
            self._violation(profile_id, None, "profile_not_in_allowlist")
            raise ProfileNotAllowed(f"llm profile '{profile_id}' is not in ALLOWED_LLM_PROFILES")
        prompt, profile = self.configs.get_prompt_and_profile(inputs.prompt_id, inputs.prompt_version, profile_id)
        if isinstance(profile, PermanentStepError):
            raise profile
        self._govern(profile)
        if isinstance(prompt, StepError):
            raise prompt
        return profile, prompt

    def _govern(self, profile: Profile) -> None:
        profile_id = profile.profile_id
        if not profile.enabled:
            self._violation(profile_id, profile.model, "profile_disabled")
            raise ProfileNotAllowed(f"llm profile '{profile_id}' is disabled")
        if profile.model not in self.allowed_models:
            self._violation(profile_id, profile.model, "model_not_in_allowlist")
            raise ModelNotAllowed(f"model '{profile.model}' of profile '{profile_id}' is not in ALLOWED_MODELS")

    def _violation(self, profile_id: str, model: str | None, reason: str) -> None:
        self.log.warning("governance.violation", profile=profile_id, model=model, reason=reason)

    def _call_and_validate(
        self, request: LlmRequest, production: _Production, output_schema: Any, deadline: float
    ) -> Any:
        """Call, validate, and resend with a repair turn while the profile's budget lasts.

        Blocked and truncated replies are never repaired; every request's usage is summed.
        """
        repairs_allowed, repairs = production.profile.repair_attempts, 0  # transient retries do not count
        while True:
            result = self._call_with_retries(request, production, deadline)
            try:
                return validate_reply(result, output_schema)
            except InvalidOutput as error:
                repair = repairs < repairs_allowed
                self.log.warning("output.invalid", code=error.code, reason=error.message, repair=repair)
                if not repair:
                    raise
                repairs += 1
                request = replace(request, contents=(*request.contents, *_repair_turns(result, error)))
                self.log.info("llm.retry", reason="repair", repair=repairs, of=repairs_allowed)

    def _call_with_retries(self, request: LlmRequest, production: _Production, deadline: float) -> LlmResult:
        """The one retry loop for transient model errors (the SDK's own retries are off), bounded
        by the retry budget and by the time left in the invocation."""
        give_up_at = min(self.retry.monotonic() + self.retry.budget_seconds, deadline)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(MODEL_TRANSIENT),
            wait=self._retry_wait,
            stop=partial(self._retry_stop, give_up_at),
            sleep=self.retry.sleep,
            reraise=True,
        )
        result: LlmResult = retrying(self._attempt, request, production, deadline)
        return result

    def _attempt(self, request: LlmRequest, production: _Production, deadline: float) -> LlmResult:
        """One request, only if the invocation still has time for it, and no longer than that."""
        left = deadline - self.retry.monotonic()
        if left <= 0:
            raise LlmTimeout("no time left in this invocation for another model request")
        if request.timeout_seconds is None or left < request.timeout_seconds:
            request = replace(request, timeout_seconds=left) if left != float("inf") else request
        return self._call(request, production, max_wait=min(self.retry.budget_seconds, left))

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

    def _call(self, request: LlmRequest, production: _Production, max_wait: float) -> LlmResult:
        with self.gate.slot(request.model, max_wait=max_wait) as queue:
            production.llm_calls += 1  # a request sent counts, whatever comes back
            call = production.llm_calls
            self.log.info("llm.request", model=request.model, provider=request.provider, call=call, **queue.as_log())
            started = self.timer()
            try:
                result = self.llm.generate(request)
            except LlmRateLimited as error:
                self.gate.cool_down(request.model, error.retry_after)  # spare the model for the whole instance
                raise
            finally:
                elapsed_ms = int((self.timer() - started) * 1000)
                production.latency_ms += elapsed_ms
        production.usage += result.usage
        production.result = result
        production.replies.append(result)
        self.log.info(
            "llm.response",
            model=request.model,
            modelVersion=result.model_version,
            finishReason=result.finish_reason,
            latencyMs=elapsed_ms,
            **result.usage.as_outputs(),
        )
        return result


def _repair_turns(result: LlmResult, error: InvalidOutput) -> tuple[Turn, ...]:
    """The model's rejected reply (when it had text) and our request to correct it."""
    previous = (Turn("model", result.text),) if result.text and result.text.strip() else ()
    return (*previous, Turn("user", repair_instruction(error)))


def _provenance(inputs: StepInputs, production: _Production) -> dict[str, Any]:
    """What produced a report: shared by the artifact's metadata and the step's outputs."""
    result = production.result
    return {
        "promptId": inputs.prompt_id,
        "promptVersion": production.prompt.version,
        "promptSha256": production.prompt.sha256,
        "llmProfile": inputs.llm_profile,
        "profileVersion": production.profile.version,
        "model": production.profile.model,
        "modelVersion": result.model_version if result else None,
        "responseId": result.response_id if result else None,
        "finishReason": result.finish_reason if result else None,
    }


def _metadata(claimed: ClaimedStep, inputs: StepInputs, production: _Production, digest: str) -> dict[str, str]:
    values = {"runId": claimed.run_id, "stepId": claimed.step.step_id, "attempt": claimed.attempt, "sha256": digest}
    values.update(_provenance(inputs, production))
    return {key: str(value) for key, value in values.items() if value is not None}


def _outputs(stored: StoredArtifact, inputs: StepInputs, production: _Production, cached: bool) -> dict[str, Any]:
    """The contract's ``outputs``. Provenance of a reused artifact comes from its own metadata."""
    outputs: dict[str, Any] = {"gcs_uri": stored.uri, "sha256": stored.sha256, "sizeBytes": stored.size_bytes}
    outputs.update(_provenance(inputs, production))
    for key in ("modelVersion", "responseId", "finishReason"):
        outputs[key] = stored.metadata.get(key) or outputs[key]
    outputs.update(
        usage=production.usage.as_outputs(),
        llmCalls=production.llm_calls,
        latencyMs=production.latency_ms,
        cached=cached,
    )
    return outputs


def debug_object_name(artifact_name: str, attempt: int) -> str:
    """``…/{fingerprint}.attempt-{n}.invalid.json``: beside the report's name, never equal to it."""
    return f"{artifact_name.removesuffix('.json')}.attempt-{attempt}.invalid.json"


def _with_location(error: StepError, uri: str) -> StepError:
    message = f"{error.message}; the rejected replies are kept at {uri}"
    if isinstance(error, InvalidOutput):
        return type(error)(message, error.feedback)
    return type(error)(message)
