"""Step documents as orchestrators write them into ``flow_runs/{runId}.steps``."""

from __future__ import annotations

from typing import Any


def step_document(
    status: str = "READY",
    type: str = "LLM_REPORT",
    depends_on: list[str] | None = None,
    prompt_id: str = "weekly",
    profile: str = "fast",
    vars: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One step: ``type``/``status``, ``inputs`` (promptId, llm.llmProfile, vars), ``dependsOn``
    when given, and any other field (``attempt``, ``claim``, ``maxAttempts`` ...) as passed."""
    data: dict[str, Any] = {
        "type": type,
        "status": status,
        "inputs": {
            "promptId": prompt_id,
            "llm": {"llmProfile": profile},
            "vars": {"team": "core"} if vars is None else vars,
        },
    }
    if depends_on is not None:
        data["dependsOn"] = depends_on
    data.update(extra)
    return data
