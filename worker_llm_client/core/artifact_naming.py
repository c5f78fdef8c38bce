"""Request fingerprint -> artifact object name.

The fingerprint hashes everything that determines the model request, so a replayed step with an
identical request lands on the same object name and reuses it instead of calling the model again.
"""

from __future__ import annotations

from urllib.parse import quote

from worker_llm_client.core.canonical import canonical_json, sha256_hex
from worker_llm_client.report_models import LlmRequest, Profile, Prompt


def request_fingerprint(prompt: Prompt, profile: Profile, request: LlmRequest) -> str:
    identity = {
        "prompt": {"id": prompt.prompt_id, "version": prompt.version, "sha256": prompt.sha256},
        "profile": {
            "id": profile.profile_id,
            "version": profile.version,
            "provider": request.provider,
            "model": request.model,
            "generation": request.generation.as_dict(),
            "safety": [[s.category, s.threshold] for s in request.safety_settings],
        },
        "systemInstruction": request.system_instruction,
        "contents": [[turn.role, turn.text] for turn in request.contents],
        "schema": request.response_schema,
    }
    return sha256_hex(canonical_json(identity))


def _segment(value: str) -> str:
    return quote(value, safe="")


def artifact_object_name(run_id: str, step_id: str, fingerprint: str) -> str:
    return f"flow_runs/{_segment(run_id)}/{_segment(step_id)}/{fingerprint}.json"
