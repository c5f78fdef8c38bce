"""A claimed step's ``inputs`` checked and turned into ``StepInputs``, or ``InvalidStep``.

Everything here is checked before anything is read: ``promptId`` and ``llm.llmProfile`` must be
ids Firestore accepts for a document (``FIRESTORE_ID_MAX_BYTES`` UTF-8 bytes at most, no '/', not
'.' or '..', not ``__...__``), ``dependsOn`` must name other steps of the run and close no cycle,
and ``vars`` become plain JSON values (``plain_values.py``), whichever path read the run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from worker_llm_client.core.plain_values import JsonValue, plain
from worker_llm_client.core.step_selection import cycle_members, cycle_through
from worker_llm_client.core.transitions import max_attempts
from worker_llm_client.errors import InvalidStep
from worker_llm_client.execution_models import StepInputs
from worker_llm_client.models import Step

FIRESTORE_ID_MAX_BYTES = 1500
_MAX_IDS_SHOWN = 8
_MAX_ID_CHARS = 40


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
        count = f" ({len(unknown)} in all)" if len(unknown) > _MAX_IDS_SHOWN else ""
        raise InvalidStep(f"dependsOn names unknown steps: {_ids(unknown, ', ')}{count}")
    if step.step_id in cycle_members(steps):
        cycle = cycle_through(step.step_id, steps)
        raise InvalidStep(f"dependsOn closes a cycle of {len(cycle) - 1} steps: {_ids(cycle, ' -> ')}")


def _ids(ids: list[str] | tuple[str, ...], separator: str) -> str:
    """Step ids for a message, bounded: the first ``_MAX_IDS_SHOWN``, each cut to ``_MAX_ID_CHARS``."""
    shown = [i if len(i) <= _MAX_ID_CHARS else i[: _MAX_ID_CHARS - 1] + "…" for i in ids[:_MAX_IDS_SHOWN]]
    return separator.join(shown) + (f"{separator}…" if len(ids) > _MAX_IDS_SHOWN else "")


def _required_id(value: Any, name: str) -> str:
    """A document id Firestore accepts; the message names the field, never the value."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidStep(f"{name} is required and must be a non-empty string")
    if "/" in value:
        raise InvalidStep(f"{name} must not contain '/'")
    if value in (".", ".."):
        raise InvalidStep(f"{name} must not be '.' or '..'")
    if len(value) >= 4 and value.startswith("__") and value.endswith("__"):
        raise InvalidStep(f"{name} must not start and end with '__' (reserved by Firestore)")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidStep(f"{name} must be valid UTF-8 text") from None
    if size > FIRESTORE_ID_MAX_BYTES:
        raise InvalidStep(f"{name} must be at most {FIRESTORE_ID_MAX_BYTES} bytes")
    return value


def _optional_version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidStep("inputs.promptVersion must be a positive integer")
    return value


def _vars(value: Any) -> dict[str, JsonValue]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidStep("inputs.vars must be a map")
    return cast(dict[str, JsonValue], plain(value, "inputs.vars"))
