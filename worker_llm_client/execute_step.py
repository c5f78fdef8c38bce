"""The use case: claim -> resolve -> call -> validate -> write -> finalize.

``RunExecutor.handle(snapshot)`` claims every runnable step of a run in one precondition write
(re-reading and deciding again on conflict), runs the claimed steps concurrently and finalizes
each in a transaction guarded by its claim token. The clock is read once per decision; every
outside effect goes through a port.
"""

from __future__ import annotations

import contextvars
import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from worker_llm_client.core.artifact_naming import artifact_object_name, request_fingerprint
from worker_llm_client.core.canonical import sha256_hex
from worker_llm_client.core.output_validation import load_schema, repair_instruction, validate_reply
from worker_llm_client.core.prompt_rendering import render
from worker_llm_client.core.retry_policy import after_failure
from worker_llm_client.core.step_inputs import parse_inputs
from worker_llm_client.core.step_selection import ClaimPlan, plan_claims
from worker_llm_client.core.transitions import failed_patch, max_attempts, retry_wait_patch, succeeded_patch
from worker_llm_client.errors import (
    InvalidOutput,
    ModelNotAllowed,
    ProfileNotAllowed,
    StepError,
)
from worker_llm_client.models import (
    DEFAULT_MAX_ATTEMPTS,
    Claim,
    ClaimedStep,
    LlmRequest,
    LlmResult,
    Profile,
    Prompt,
    RunSnapshot,
    StepInputs,
    StepStatus,
    StoredArtifact,
    Turn,
    Usage,
)
from worker_llm_client.observability import bind_step, get_logger
from worker_llm_client.ports import ArtifactStore, Clock, ConfigStore, LlmClient, RunStore

CLAIM_ROUNDS = 5


@dataclass(frozen=True)
class ExecutorPolicy:
    worker_id: str
    lease_seconds: int
    max_parallel_steps: int
    allowed_llm_profiles: frozenset[str]
    allowed_models: frozenset[str]


@dataclass(frozen=True)
class StepReport:
    step_id: str
    status: str
    code: str | None
    finalized: bool


@dataclass
class _Production:
    """What producing one report cost and yielded; feeds ``outputs`` and the artifact metadata."""

    prompt: Prompt
    profile: Profile
    llm_calls: int = 0
    usage: Usage = field(default_factory=Usage)
    latency_ms: int = 0
    result: LlmResult | None = None


class RunExecutor:
    def __init__(
        self,
        runs: RunStore,
        configs: ConfigStore,
        artifacts: ArtifactStore,
        llm: LlmClient,
        clock: Clock,
        policy: ExecutorPolicy,
        new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
        timer: Callable[[], float] = time.perf_counter,
        closers: tuple[Callable[[], object], ...] = (),
    ) -> None:
        self.runs, self.configs, self.artifacts, self.llm = runs, configs, artifacts, llm
        self.clock, self.policy, self.new_token, self.timer = clock, policy, new_token, timer
        self.closers = closers
        self.log = get_logger()

    def close(self) -> None:
        """Release the clients the composition root built (a deployed instance never needs to)."""
        for close in self.closers:
            close()

    def handle(self, run: RunSnapshot) -> list[StepReport]:
        """Claim what is runnable in ``run`` (or its fresher self) and execute it."""
        snapshot, claimed = self.claim(run)
        if len(claimed) <= 1:
            return [self.execute(snapshot, step) for step in claimed]
        with ThreadPoolExecutor(max_workers=len(claimed), thread_name_prefix="step") as pool:
            futures = [pool.submit(contextvars.copy_context().run, self.execute, snapshot, step) for step in claimed]
            return [future.result() for future in futures]

    def claim(self, run: RunSnapshot) -> tuple[RunSnapshot, list[ClaimedStep]]:
        snapshot: RunSnapshot | None = run
        for _ in range(CLAIM_ROUNDS):
            if snapshot is None:
                return run, []
            if snapshot.update_time is None:
                snapshot = self.runs.get_run(run.run_id)
                continue
            now = self.clock.now()
            plan = plan_claims(snapshot, now, self.policy.max_parallel_steps, partial(self._new_claim, now))
            if plan.empty:
                return snapshot, []
            if self.runs.apply_claim(snapshot.run_id, snapshot.update_time, plan.patch):
                return snapshot, self._accept(snapshot, plan)
            fresh = self.runs.get_run(run.run_id)
            if fresh is not None and _claim_landed(fresh, plan):
                # the commit was retried after it had already landed: the claim is ours after all
                return snapshot, self._accept(snapshot, plan)
            self.log.info("step.claim_conflict", steps=len(plan.claimed), reason="run_changed_since_snapshot")
            snapshot = fresh
        self.log.warning("step.claim_conflict", reason="gave_up_after_rounds", rounds=CLAIM_ROUNDS)
        return run, []

    def _accept(self, snapshot: RunSnapshot, plan: ClaimPlan) -> list[ClaimedStep]:
        for step in plan.exhausted:
            self.log.warning("step.failed", stepId=step.step_id, attempt=step.attempt, reason="budget_used")
        claimed = [ClaimedStep(snapshot.run_id, step, step.attempt + 1, claim) for step, claim in plan.claimed]
        for item in claimed:
            if item.step.status == StepStatus.RUNNING:
                self.log.warning("step.lease_expired", stepId=item.step.step_id, attempt=item.step.attempt)
            self.log.info("step.claimed", stepId=item.step.step_id, attempt=item.attempt)
        return claimed

    def _new_claim(self, now: datetime) -> Claim:
        expires = now + timedelta(seconds=self.policy.lease_seconds)
        return Claim(self.new_token(), self.policy.worker_id, now, expires)

    def execute(self, run: RunSnapshot, claimed: ClaimedStep) -> StepReport:
        step_id = claimed.step.step_id
        bind_step(step_id, claimed.attempt)
        try:
            outputs = self._produce(run, claimed)
        except StepError as error:
            return self._finalize_error(claimed, error)
        patch = succeeded_patch(step_id, outputs, self.clock.now())
        finalized = self.runs.finalize(claimed.run_id, step_id, claimed.claim.token, patch)
        if finalized:
            self.log.info(
                "step.succeeded", gcsUri=outputs["gcs_uri"], llmCalls=outputs["llmCalls"], cached=outputs["cached"]
            )
        else:
            self._log_discarded()
        return StepReport(step_id, "SUCCEEDED", None, finalized)

    def _finalize_error(self, claimed: ClaimedStep, error: StepError) -> StepReport:
        step_id = claimed.step.step_id
        budget = max_attempts(claimed.step) or DEFAULT_MAX_ATTEMPTS
        outcome = after_failure(error, claimed.attempt, budget, self.clock.now())
        if outcome.retry_at is None:
            patch = failed_patch(step_id, outcome.error, self.clock.now())
        else:
            patch = retry_wait_patch(step_id, outcome.error, outcome.retry_at)
        finalized = self.runs.finalize(claimed.run_id, step_id, claimed.claim.token, patch)
        if not finalized:
            self._log_discarded()
        elif outcome.retry_at is None:
            self.log.warning("step.failed", code=error.code, retryable=error.retryable)
        else:
            self.log.warning("step.retry_scheduled", code=error.code, retryAt=outcome.retry_at.isoformat())
        return StepReport(step_id, "FAILED" if outcome.failed else "RETRY_WAIT", error.code, finalized)

    def _log_discarded(self) -> None:
        self.log.warning("step.claim_conflict", reason="finalize_discarded_step_no_longer_held")

    # -- producing one report --------------------------------------------------------------

    def _produce(self, run: RunSnapshot, claimed: ClaimedStep) -> dict[str, Any]:
        inputs = parse_inputs(claimed.step, run.steps)
        profile = self._governed_profile(inputs.llm_profile)
        prompt = self.configs.get_prompt(inputs.prompt_id, inputs.prompt_version)
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
        report = self._call_and_validate(request, production, output_schema)
        data = json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8")
        stored = self.artifacts.put(name, data, _metadata(claimed, inputs, production, sha256_hex(data)))
        event = "artifact.written" if stored.created else "artifact.reused"
        self.log.info(event, gcsUri=stored.uri, sizeBytes=stored.size_bytes)
        return _outputs(stored, inputs, production, cached=not stored.created)

    def _governed_profile(self, profile_id: str) -> Profile:
        if profile_id not in self.policy.allowed_llm_profiles:
            self._violation(profile_id, None, "profile_not_in_allowlist")
            raise ProfileNotAllowed(f"llm profile '{profile_id}' is not in ALLOWED_LLM_PROFILES")
        profile = self.configs.get_profile(profile_id)
        if not profile.enabled:
            self._violation(profile_id, profile.model, "profile_disabled")
            raise ProfileNotAllowed(f"llm profile '{profile_id}' is disabled")
        if profile.model not in self.policy.allowed_models:
            self._violation(profile_id, profile.model, "model_not_in_allowlist")
            raise ModelNotAllowed(f"model '{profile.model}' of profile '{profile_id}' is not in ALLOWED_MODELS")
        return profile

    def _violation(self, profile_id: str, model: str | None, reason: str) -> None:
        self.log.warning("governance.violation", profile=profile_id, model=model, reason=reason)

    def _call_and_validate(self, request: LlmRequest, production: _Production, output_schema: Any) -> Any:
        """Call, validate, and resend with a repair turn while the profile's budget lasts.

        Blocked and truncated replies are never repaired; every request's usage is summed.
        """
        calls_allowed = 1 + production.profile.repair_attempts
        while True:
            result = self._call(request, production)
            try:
                return validate_reply(result, output_schema)
            except InvalidOutput as error:
                repair = production.llm_calls < calls_allowed
                self.log.warning("output.invalid", code=error.code, reason=error.message, repair=repair)
                if not repair:
                    raise
                request = replace(request, contents=(*request.contents, *_repair_turns(result, error)))
                self.log.info("llm.retry", reason="repair", call=production.llm_calls + 1, of=calls_allowed)

    def _call(self, request: LlmRequest, production: _Production) -> LlmResult:
        self.log.info("llm.request", model=request.model, provider=request.provider, call=production.llm_calls + 1)
        started = self.timer()
        result = self.llm.generate(request)
        elapsed_ms = int((self.timer() - started) * 1000)
        production.llm_calls += 1
        production.usage += result.usage
        production.latency_ms += elapsed_ms
        production.result = result
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


def _claim_landed(fresh: RunSnapshot, plan: ClaimPlan) -> bool:
    """True when ``fresh`` shows every step of ``plan`` RUNNING under the claim we tried to write."""
    return bool(plan.claimed) and all(
        (now := fresh.steps.get(step.step_id)) is not None
        and now.status == StepStatus.RUNNING
        and now.claim_token == claim.token
        for step, claim in plan.claimed
    )


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
