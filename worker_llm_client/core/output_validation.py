"""Model reply -> validated report, or the precise reason it is not one.

Order matters: a blocked or truncated reply is classified before any parsing (a truncated JSON
document is never repaired into a report). Messages describe where the reply broke the schema
and which rule it broke, never the reply's own values: they end up in Firestore and logs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from worker_llm_client.errors import (
    InvalidOutput,
    LlmBlocked,
    LlmTruncated,
    OutputNotJson,
    OutputSchemaMismatch,
    SchemaInvalid,
)
from worker_llm_client.report_models import LlmResult

# Every finish reason (google-genai 3.4's FinishReason) that means a policy stopped the reply:
# repairing those would only be blocked again.
BLOCKING_FINISH_REASONS = frozenset(
    {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "MODEL_ARMOR",
        "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
    }
)  # fmt: skip
TRUNCATED_FINISH_REASONS = frozenset({"MAX_TOKENS", "CONTINUATION"})
_MAX_VIOLATIONS = 5
_MAX_FEEDBACK = 10
_MAX_FEEDBACK_LINE = 240
_MAX_RULE = 120


@dataclass(frozen=True)
class OutputSchema:
    """A prompt's parsed outputSchema and its validator, compiled once per schema text."""

    schema: Mapping[str, Any]
    validator: Draft202012Validator
    declared_names: frozenset[str]  # property names the schema declares: safe to show in messages


@lru_cache(maxsize=128)
def load_schema(text: str) -> OutputSchema:
    try:
        schema = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise SchemaInvalid(f"outputSchema is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise SchemaInvalid("outputSchema must be a JSON object")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaInvalid(f"outputSchema is not valid draft 2020-12 at {exc.json_path}: {exc.message}") from exc
    names: set[str] = set()
    _walk(schema, schema, names)
    checker = Draft202012Validator.FORMAT_CHECKER
    return OutputSchema(schema, Draft202012Validator(schema, format_checker=checker), frozenset(names))


def _walk(node: Any, root: Mapping[str, Any], names: set[str]) -> None:
    """Collect declared property names and fail on any ``$ref`` that does not resolve locally."""
    if isinstance(node, list):
        for item in node:
            _walk(item, root, names)
        return
    if not isinstance(node, Mapping):
        return
    if isinstance(node.get("properties"), Mapping):
        names.update(node["properties"])
    ref = node.get("$ref")
    if isinstance(ref, str):
        _check_ref(ref, root)
    for key, value in node.items():
        if key not in ("enum", "const", "default", "examples"):
            _walk(value, root, names)


def _check_ref(ref: str, root: Mapping[str, Any]) -> None:
    if not ref.startswith("#"):
        raise SchemaInvalid(f"outputSchema $ref {ref!r} is not local; only '#...' references are supported")
    resolver = (
        Registry().with_resource("urn:output-schema", DRAFT202012.create_resource(root)).resolver("urn:output-schema")
    )
    try:
        resolver.lookup(ref)
    except Unresolvable as exc:
        raise SchemaInvalid(f"outputSchema $ref {ref!r} does not resolve") from exc


def classify(result: LlmResult) -> str:
    """The reply's text when it may hold a report; raises for blocked and truncated replies."""
    if result.block_reason:
        raise LlmBlocked(f"the prompt was blocked by the model (blockReason={result.block_reason})")
    if result.finish_reason in BLOCKING_FINISH_REASONS:
        raise LlmBlocked(f"the reply was blocked by the model (finishReason={result.finish_reason})")
    if result.finish_reason in TRUNCATED_FINISH_REASONS:
        raise LlmTruncated(
            f"the reply hit the output token limit (finishReason={result.finish_reason}); "
            "raise maxOutputTokens in the profile or ask for a shorter report"
        )
    if not result.text or not result.text.strip():
        raise OutputNotJson(f"the reply had no text (finishReason={result.finish_reason})", "it was empty")
    return result.text


def parse_report(text: str, output: OutputSchema) -> Any:
    try:
        report = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
        message = f"the reply is not JSON ({where}; {len(text)} characters)"
        raise OutputNotJson(message, f"it is not a JSON document ({where})") from exc
    violations = sorted(output.validator.iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))
    if violations:
        shown = "; ".join(describe_violation(v, output.declared_names) for v in violations[:_MAX_VIOLATIONS])
        more = f" (+{len(violations) - _MAX_VIOLATIONS} more)" if len(violations) > _MAX_VIOLATIONS else ""
        message = f"{len(violations)} schema violation(s): {shown}{more}"
        raise OutputSchemaMismatch(message, _feedback(violations))
    return report


def _reject_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON (Python's parser accepts them): refuse them."""
    raise json.JSONDecodeError(f"{name} is not a JSON value", name, 0)


def _feedback(violations: list[ValidationError]) -> str:
    """For the model's repair turn only: real paths and jsonschema's messages, bounded."""
    lines = []
    for error in violations[:_MAX_FEEDBACK]:
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        line = f"- {path}: {error.message}"
        lines.append(line if len(line) <= _MAX_FEEDBACK_LINE else line[: _MAX_FEEDBACK_LINE - 1] + "…")
    return "it does not match the response schema:\n" + "\n".join(lines)


def repair_instruction(error: InvalidOutput) -> str:
    """The user turn that asks the model to correct its previous reply."""
    return (
        f"Your previous reply cannot be used: {error.feedback or error.message}\n"
        "Reply again with only the corrected JSON object that satisfies the response schema: "
        "no prose, no Markdown code fences."
    )


def validate_reply(result: LlmResult, output: OutputSchema) -> Any:
    return parse_report(classify(result), output)


def describe_violation(error: ValidationError, declared_names: frozenset[str] = frozenset()) -> str:
    """``$.path: keyword rule`` built from the schema side only, never the instance's values.

    Keys the schema does not declare (the model's own) show as ``*``.
    """
    rule: Any = error.validator_value
    schema: Any = error.schema
    if error.validator == "required" and isinstance(error.instance, dict):
        rule = [name for name in rule if name not in error.instance]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(schema.get("properties", {}))
        rule = f"false ({sum(1 for k in error.instance if k not in allowed)} unexpected properties)"
    elif error.validator == "type":
        rule = f"{rule} (got {type(error.instance).__name__})"
    text = json.dumps(rule, ensure_ascii=False, default=str) if not isinstance(rule, str) else rule
    if len(text) > _MAX_RULE:
        text = text[: _MAX_RULE - 1] + "…"
    return f"{_path(error, declared_names)}: {error.validator} {text}"


def _path(error: ValidationError, declared_names: frozenset[str]) -> str:
    parts = (f"[{p}]" if isinstance(p, int) else f".{p}" if p in declared_names else ".*" for p in error.absolute_path)
    return "$" + "".join(parts)
