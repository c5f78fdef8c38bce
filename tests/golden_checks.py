"""What the golden-vector tests of every provider share: reading a vector as strict JSON, the
strings of a schema that an error message may name (everything else the model wrote must never
appear in one), and judging an adapter's result as the executor does."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from worker_llm_client.core.output_validation import load_schema, validate_reply
from worker_llm_client.errors import StepError
from worker_llm_client.execution_models import LlmResult

STRING_LITERAL = re.compile(r'"(?:[^"\\\n]|\\.)*"')
MIN_LEAK_LENGTH = 7  # strings longer than 6 characters must never show up in an error message


def _reject_constant(token: str) -> Any:
    raise ValueError(f"{token} is not JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"duplicate keys {duplicates}")
    return dict(pairs)


def strict_loads(text: str) -> Any:
    """RFC 8259 JSON only: no NaN/Infinity literals, no duplicate keys."""
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)


def load_vector(path: Path) -> dict[str, Any]:
    vector: dict[str, Any] = strict_loads(path.read_text(encoding="utf-8"))
    return vector


def schema_strings(node: Any) -> set[str]:
    """Property names and enum/const values: the schema side, which messages may name."""
    found: set[str] = set()
    if isinstance(node, dict):
        found.update(node.get("properties", {}))
        found.update(v for v in node.get("enum", []) if isinstance(v, str))
        if isinstance(node.get("const"), str):
            found.add(node["const"])
        for value in node.values():
            found |= schema_strings(value)
    elif isinstance(node, list):
        for item in node:
            found |= schema_strings(item)
    return found


def check_judged(
    name: str, result: LlmResult, schema_text: str, expected: dict[str, Any], model_strings: set[str]
) -> StepError | None:
    """Judge ``result`` as the executor does (``validate_reply``) and check it against the vector's
    ``expected``: the outcome, code and retryability; the report, or an error message that quotes
    none of ``model_strings``. Returns the error, if any, for checks of the provider's own."""
    report: Any = None
    error: StepError | None = None
    try:
        report = validate_reply(result, load_schema(schema_text))
    except StepError as exc:
        error = exc
    outcome = {
        "outcome": "report" if error is None else "error",
        "code": None if error is None else error.code,
        "retryable": False if error is None else error.retryable,
    }
    wanted = {key: expected[key] for key in outcome}
    assert outcome == wanted, f"{name}: got {outcome} ({error.message if error else report!r})"
    if error is None:
        assert report == expected["report"]
    else:
        leaked = sorted(s for s in model_strings if s in error.message)
        assert not leaked, f"model output in the error message {error.message!r}: {leaked}"
    return error
