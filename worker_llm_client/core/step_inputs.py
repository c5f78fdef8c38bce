"""A claimed step's ``inputs`` checked and turned into ``StepInputs``, or ``InvalidStep``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker_llm_client.core.transitions import max_attempts
from worker_llm_client.errors import InvalidStep
from worker_llm_client.models import Step
from worker_llm_client.report_models import StepInputs


def parse_inputs(step: Step, steps: Mapping[str, Step]) -> StepInputs:
    _check_dependencies(step, steps)
    inputs = step.data.get("inputs")
    if not isinstance(inputs, Mapping):
        raise InvalidStep("inputs must be a map with promptId and llm.llmProfile")
    llm = inputs.get("llm")
    profile = llm.get("llmProfile") if isinstance(llm, Mapping) else None
    budget = max_attempts(step)
    if budget is None:
        raise InvalidStep("maxAttempts must be a positive integer")
    return StepInputs(
        prompt_id=_required_id(inputs.get("promptId"), "inputs.promptId"),
        prompt_version=_optional_version(inputs.get("promptVersion")),
        llm_profile=_required_id(profile, "inputs.llm.llmProfile"),
        vars=_vars(inputs.get("vars")),
        max_attempts=budget,
    )


def _check_dependencies(step: Step, steps: Mapping[str, Step]) -> None:
    depends_on = step.data.get("dependsOn")
    if depends_on is None:
        return
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        raise InvalidStep("dependsOn must be a list of step ids")
    if step.step_id in depends_on:
        raise InvalidStep("dependsOn names the step itself")
    unknown = sorted(set(depends_on) - set(steps))
    if unknown:
        raise InvalidStep(f"dependsOn names unknown steps: {', '.join(unknown)}")


def _required_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidStep(f"{name} is required and must be a non-empty string")
    if "/" in value:
        raise InvalidStep(f"{name} must not contain '/'")
    return value


def _optional_version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidStep("inputs.promptVersion must be a positive integer")
    return value


def _vars(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidStep("inputs.vars must be a map")
    return value
