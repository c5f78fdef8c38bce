"""Producing one report: resolve -> render -> call (``call_model``) -> validate -> write.

Given a claimed step, ``ReportProducer.produce`` returns the contract's ``outputs`` or raises the
``StepError`` to record. Governance (``governance.py``) is checked before anything is read or
sent; an identical request's artifact is reused instead of calling the model; the model is called,
retried and repaired by ``call_model.ModelCaller``, which accounts every request in the attempt's
ledger. When the step's model stays unavailable, rate limited or timing out after its retries, the
profile's ``fallbacks`` are tried in order; each serves under its own request fingerprint, so an
artifact a fallback wrote is found again only by that fallback's identical request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from worker_llm_client import tracing
from worker_llm_client.call_model import MODEL_TRANSIENT, AttemptLedger, ModelCaller, ModelRetry
from worker_llm_client.core.artifact_naming import artifact_object_name, debug_object_name, request_fingerprint
from worker_llm_client.core.canonical import sha256_hex
from worker_llm_client.core.output_validation import OutputSchema, load_schema, report_bytes
from worker_llm_client.core.prompt_rendering import RenderedPrompt, render
from worker_llm_client.core.schema_dialects import wire_schema
from worker_llm_client.core.secret_scan import redact_secrets
from worker_llm_client.core.step_inputs import parse_inputs
from worker_llm_client.core.transitions import lease_expired_error
from worker_llm_client.errors import (
    InputRejected,
    Internal,
    InvalidOutput,
    LlmAuth,
    LlmBadRequest,
    LlmTruncated,
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
from worker_llm_client.governance import ProfileGovernor
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
        self.log = get_logger()
        self.governor = ProfileGovernor(catalog, allowed_llm_profiles, allowed_models, self.log)
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
            profile, prompt = self.governor.resolve(inputs)
        output_schema = load_schema(prompt.output_schema)
        variables, redacted = self._screen(inputs, profile)
        rendered = render(prompt, variables)
        ledger = AttemptLedger(prompt, profile, secrets_redacted=redacted)
        job = _Job(claimed, inputs, prompt, rendered, output_schema)
        candidate = _Candidate.of(profile, job)
        reused = self._find(candidate, ledger, job)
        if reused is not None:
            return reused
        if claimed.salvage:  # the last attempt's worker died before writing a report: nothing to salvage
            return self._salvage(job, candidate, ledger)
        try:
            return self._serve(job, candidate, ledger)
        except StepError as error:
            ledger.bill(error)
            raise
        except Exception as exc:  # outside our error tree: recorded as INTERNAL, the attempt's cost kept
            self.log.error("step.internal_error", where="producing the report", exc_info=exc)
            internal = Internal.from_exception(exc, "producing the report")
            ledger.bill(internal)
            raise internal from exc

    def _serve(self, job: _Job, candidate: _Candidate, ledger: AttemptLedger) -> dict[str, Any]:
        """The report from the step's profile, else from its fallbacks in order while its model
        stays unavailable, rate limited or timing out after the retries (never on other errors)."""
        primary, fallbacks = candidate, self.governor.fallbacks(candidate.profile, partial(_Candidate.of, job=job))
        cause: StepError | None = None
        while True:
            try:
                return self._report(job, candidate, ledger)
            except MODEL_TRANSIENT as error:
                cause = error
            except (LlmAuth, LlmBadRequest) as error:
                if cause is None:  # the step's own profile: its error is the step's
                    raise
                self.log.warning(  # a fallback that refuses our key or request is skipped like an unusable one
                    "llm.fallback", fromProfile=primary.profile.profile_id, toProfile=candidate.profile.profile_id,
                    skipped=error.code,
                )  # fmt: skip
            served = next(fallbacks, None) if self.model.time_left(job.claimed.deadline) else None
            if served is None:
                raise cause
            candidate = served[1]
            self.log.warning(
                "llm.fallback",
                fromProfile=primary.profile.profile_id,
                toProfile=candidate.profile.profile_id,
                code=cause.code,
                provider=candidate.profile.provider,
                model=candidate.profile.model,
            )
            ledger.fall_back(candidate.profile)
            reused = self._find(candidate, ledger, job)
            if reused is not None:
                return reused

    def _find(self, candidate: _Candidate, ledger: AttemptLedger, job: _Job) -> dict[str, Any] | None:
        """The outputs of an identical request's artifact, if one was written: no model call."""
        existing = self.artifacts.find(candidate.name)
        if existing is None:
            return None
        self.log.info("artifact.reused", gcsUri=existing.uri, reason="identical_request_replayed")
        return _outputs(existing, job.inputs, ledger, cached=True)

    def _salvage(self, job: _Job, primary: _Candidate, ledger: AttemptLedger) -> dict[str, Any]:
        """The report a fallback of the expired attempt wrote, if any; else LEASE_EXPIRED."""
        for profile, candidate in self.governor.fallbacks(primary.profile, partial(_Candidate.of, job=job)):
            ledger.fall_back(profile)
            reused = self._find(candidate, ledger, job)
            if reused is not None:
                return reused
        raise lease_expired_error(job.claimed.attempt)

    def _report(self, job: _Job, candidate: _Candidate, ledger: AttemptLedger) -> dict[str, Any]:
        claimed, inputs, name = job.claimed, job.inputs, candidate.name
        try:
            report = self.model.call_and_validate(candidate.request, ledger, job.output_schema, claimed.deadline)
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


@dataclass(frozen=True)
class _Job:
    """What an attempt prepares once, whichever profile serves it."""

    claimed: ClaimedStep
    inputs: StepInputs
    prompt: Prompt
    rendered: RenderedPrompt
    output_schema: OutputSchema


@dataclass(frozen=True)
class _Candidate:
    """A profile that may serve the step, with its request and the artifact name it would write."""

    profile: Profile
    request: LlmRequest
    name: str

    @classmethod
    def of(cls, profile: Profile, job: _Job) -> _Candidate:
        """Raises ``SchemaInvalid`` when the profile's provider cannot take the prompt's schema."""
        rendered, schema = job.rendered, job.output_schema.schema
        request = LlmRequest(
            provider=profile.provider,
            model=profile.model,
            system_instruction=rendered.system_instruction,
            contents=(Turn("user", rendered.user),),
            response_schema=schema,
            generation=profile.generation,
            safety_settings=profile.safety_settings,
            timeout_seconds=profile.timeout_seconds,
            endpoint=profile.endpoint,
            wire_schema=wire_schema(schema, profile.provider, profile.structured_output),
        )
        claimed = job.claimed
        name = artifact_object_name(
            claimed.run_id, claimed.step.step_id, request_fingerprint(job.prompt, profile, request)
        )
        return cls(profile, request, name)


def _provenance(inputs: StepInputs, ledger: AttemptLedger) -> dict[str, Any]:
    """What produced a report: shared by the artifact's metadata and the step's outputs."""
    result = ledger.result
    return {
        "promptId": inputs.prompt_id,
        "promptVersion": ledger.prompt.version,
        "promptSha256": ledger.prompt.sha256,
        "llmProfile": ledger.profile.profile_id,
        "profileVersion": ledger.profile.version,
        "provider": ledger.profile.provider,
        "model": ledger.profile.model,
        "modelVersion": result.model_version if result else None,
        "responseId": result.response_id if result else None,
        "finishReason": result.finish_reason if result else None,
        "fallbackFrom": ledger.fallback_from,
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
