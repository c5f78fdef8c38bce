"""Producing one report: resolve -> render -> call (``call_model``) -> validate -> write.

Given a claimed step, ``ReportProducer.produce`` returns the contract's ``outputs`` or raises the
``StepError`` to record. Governance is checked before anything is read or sent; an identical
request's artifact is reused instead of calling the model; the model is called, retried and
repaired by ``call_model.ModelCaller``, which accounts every request in the attempt's ledger.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from worker_llm_client import tracing
from worker_llm_client.call_model import AttemptLedger, ModelCaller, ModelRetry
from worker_llm_client.core.artifact_naming import artifact_object_name, debug_object_name, request_fingerprint
from worker_llm_client.core.canonical import sha256_hex
from worker_llm_client.core.output_validation import OutputSchema, load_schema, report_bytes
from worker_llm_client.core.prompt_rendering import render
from worker_llm_client.core.secret_scan import redact_secrets
from worker_llm_client.core.step_inputs import parse_inputs
from worker_llm_client.core.transitions import lease_expired_error
from worker_llm_client.errors import (
    InputRejected,
    Internal,
    InvalidOutput,
    LlmTruncated,
    ModelNotAllowed,
    PermanentStepError,
    ProfileNotAllowed,
    StepError,
)
from worker_llm_client.execution_models import (
    ClaimedStep,
    LlmRequest,
    Profile,
    Prompt,
    StepInputs,
    StoredArtifact,
    Turn,
)
from worker_llm_client.models import RunSnapshot
from worker_llm_client.observability import get_logger
from worker_llm_client.ports import ArtifactStore, CatalogStore, LlmClient


class ReportProducer:
    def __init__(
        self,
        catalog: CatalogStore,
        artifacts: ArtifactStore,
        llm: LlmClient,
        allowed_llm_profiles: frozenset[str],
        allowed_models: frozenset[str],
        timer: Callable[[], float] = time.perf_counter,
        retry: ModelRetry | None = None,
        max_inflight: int = 8,
    ) -> None:
        self.catalog, self.artifacts = catalog, artifacts
        self.allowed_llm_profiles, self.allowed_models = allowed_llm_profiles, allowed_models
        self.log = get_logger()
        self.model = ModelCaller(llm, retry or ModelRetry(), max_inflight, timer, self.log)

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
        with tracing.span(
            "catalog.resolve", {"flow.prompt_id": inputs.prompt_id, "flow.llm_profile": inputs.llm_profile}
        ):
            profile, prompt = self._resolve(inputs)
        output_schema = load_schema(prompt.output_schema)
        variables, redacted = self._screen(inputs, profile)
        rendered = render(prompt, variables)
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
        ledger = AttemptLedger(prompt, profile, secrets_redacted=redacted)
        existing = self.artifacts.find(name)
        if existing is not None:
            self.log.info("artifact.reused", gcsUri=existing.uri, reason="identical_request_replayed")
            return _outputs(existing, inputs, ledger, cached=True)
        if claimed.salvage:  # the last attempt's worker died before writing a report: nothing to salvage
            raise lease_expired_error(claimed.attempt)
        try:
            return self._report(name, claimed, inputs, request, ledger, output_schema)
        except StepError as error:
            ledger.bill(error)
            raise
        except Exception as exc:  # outside our error tree: recorded as INTERNAL, the attempt's cost kept
            self.log.error("step.internal_error", where="producing the report", exc_info=exc)
            internal = Internal.from_exception(exc, "producing the report")
            ledger.bill(internal)
            raise internal from exc

    def _report(
        self,
        name: str,
        claimed: ClaimedStep,
        inputs: StepInputs,
        request: LlmRequest,
        ledger: AttemptLedger,
        output_schema: OutputSchema,
    ) -> dict[str, Any]:
        try:
            report = self.model.call_and_validate(request, ledger, output_schema, claimed.deadline)
        except (InvalidOutput, LlmTruncated) as error:
            self._keep_replies(error, debug_object_name(name, claimed.attempt), claimed, ledger)
            raise
        data = report_bytes(report)
        with tracing.span("artifact.write", {"flow.size_bytes": len(data)}):
            stored = self.artifacts.put(name, data, _metadata(claimed, inputs, ledger, sha256_hex(data)))
        event = "artifact.written" if stored.created else "artifact.reused"
        self.log.info(event, gcsUri=stored.uri, sizeBytes=stored.size_bytes)
        return _outputs(stored, inputs, ledger, cached=not stored.created)

    def _keep_replies(self, error: StepError, object_name: str, claimed: ClaimedStep, ledger: AttemptLedger) -> None:
        """Keep the rejected replies for debugging next to where the report would be; the step's
        error message says where. Model text goes to that object only, never to Firestore or logs."""
        if not any(reply.text for reply in ledger.replies):
            return
        envelope = {
            "note": "model replies rejected by validation: NOT a report",
            "runId": claimed.run_id,
            "stepId": claimed.step.step_id,
            "attempt": claimed.attempt,
            "code": error.code,
            "error": error.message,
            "replies": [
                {"call": call, "finishReason": reply.finish_reason, "responseId": reply.response_id, "text": reply.text}
                for call, reply in enumerate(ledger.replies, start=1)
            ],
        }
        data = json.dumps(envelope, indent=2).encode("utf-8")  # ASCII escapes: a lone surrogate still encodes
        try:
            kept = self.artifacts.put(
                object_name, data, {"runId": claimed.run_id, "code": error.code, "sha256": sha256_hex(data)}
            )
        except StepError as storage_error:  # keeping them is best effort: the output error is what counts
            self.log.warning("output.invalid", reason="replies_not_kept", code=storage_error.code)
            return
        error.add_detail(f"the rejected replies are kept at {kept.uri}")

    def _screen(self, inputs: StepInputs, profile: Profile) -> tuple[Mapping[str, Any], int]:
        """The vars a template may see: credentials redacted, or the step refused (the profile's
        ``secretsPolicy``). Logs and errors name the vars and kinds, never the values."""
        variables, found = redact_secrets(inputs.vars)
        if not found:
            return inputs.vars, 0
        kinds, where = sorted({f.kind for f in found}), sorted({f.var for f in found})
        if profile.secrets_policy == "reject":
            first = found[0]
            raise InputRejected(
                f"inputs.vars.{first.var} holds a credential ({first.kind}) and profile '{profile.profile_id}' "
                f"rejects them (secretsPolicy: reject); {len(found)} found in {', '.join(where)}"
            )
        self.log.warning("input.secrets_redacted", count=len(found), kinds=kinds, vars=where)
        return variables, len(found)

    def _resolve(self, inputs: StepInputs) -> tuple[Profile, Prompt]:
        """The governed profile and the prompt, read together; the profile's problems come first
        (nothing is read for a profile outside the allowlist)."""
        profile_id = inputs.llm_profile
        if profile_id not in self.allowed_llm_profiles:
            self._violation(profile_id, None, "profile_not_in_allowlist")
            raise ProfileNotAllowed(f"llm profile '{profile_id}' is not in ALLOWED_LLM_PROFILES")
        prompt, profile = self.catalog.get_prompt_and_profile(inputs.prompt_id, inputs.prompt_version, profile_id)
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


def _provenance(inputs: StepInputs, ledger: AttemptLedger) -> dict[str, Any]:
    """What produced a report: shared by the artifact's metadata and the step's outputs."""
    result = ledger.result
    return {
        "promptId": inputs.prompt_id,
        "promptVersion": ledger.prompt.version,
        "promptSha256": ledger.prompt.sha256,
        "llmProfile": inputs.llm_profile,
        "profileVersion": ledger.profile.version,
        "provider": ledger.profile.provider,
        "model": ledger.profile.model,
        "modelVersion": result.model_version if result else None,
        "responseId": result.response_id if result else None,
        "finishReason": result.finish_reason if result else None,
    }


def _metadata(claimed: ClaimedStep, inputs: StepInputs, ledger: AttemptLedger, digest: str) -> dict[str, str]:
    values = {"runId": claimed.run_id, "stepId": claimed.step.step_id, "attempt": claimed.attempt, "sha256": digest}
    values.update(_provenance(inputs, ledger))
    return {key: str(value) for key, value in values.items() if value is not None}


def _outputs(stored: StoredArtifact, inputs: StepInputs, ledger: AttemptLedger, cached: bool) -> dict[str, Any]:
    """The contract's ``outputs``. Provenance of a reused artifact comes from its own metadata."""
    outputs: dict[str, Any] = {"gcs_uri": stored.uri, "sha256": stored.sha256, "sizeBytes": stored.size_bytes}
    outputs.update(_provenance(inputs, ledger))
    for key in ("modelVersion", "responseId", "finishReason"):
        outputs[key] = stored.metadata.get(key) or outputs[key]
    outputs.update(
        usage=ledger.usage.as_outputs(),
        llmCalls=ledger.llm_calls,
        latencyMs=ledger.latency_ms,
        costUsd=ledger.cost_usd,
        secretsRedacted=ledger.secrets_redacted,
        cached=cached,
    )
    return outputs
