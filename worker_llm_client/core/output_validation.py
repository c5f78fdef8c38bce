"""Model reply -> validated report, or the precise reason it is not one.

Order matters: a blocked or truncated reply is classified before any parsing (a truncated JSON
document is never repaired into a report). The classification is provider-neutral: each adapter
passes its provider's own finish/stop reason, and the sets below hold every provider's spelling.
A reply to a schema sent with ``nulls_added`` (OpenAI strict mode) has its added nulls dropped
(``schema_dialects.restore_report``) before it is validated against the full schema. Messages
describe where the reply broke the schema and which rule it broke, never the reply's own values:
they end up in Firestore and logs.

Whatever the text, ``parse_report`` raises only ``InvalidOutput`` (a reply it cannot hold as JSON
is OUTPUT_NOT_JSON, repaired like any other): arrays and objects nested deeper than
``MAX_REPLY_DEPTH`` are refused by a linear scan before ``json.loads`` recurses into them; integers
longer than ``MAX_REPLY_INT_DIGITS`` digits, numbers beyond a float, ``NaN``/``Infinity`` and lone
UTF-16 surrogates (``"\\ud800"``) are refused, so ``report_bytes`` always encodes what it returns.
What a schema may hold (local refs only, bounded, RE2 patterns) is ``schema_guard``'s docstring.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn

from jsonschema import ValidationError
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from worker_llm_client.core.schema_dialects import restore_report
from worker_llm_client.core.schema_guard import (
    additional_properties,
    build_validator,
    check_encodable,
    check_metaschema,
    check_schema_text,
    inspect_schema,
    nesting_overflow,
)
from worker_llm_client.errors import (
    InvalidOutput,
    LlmBlocked,
    LlmTruncated,
    OutputNotJson,
    OutputSchemaMismatch,
    SchemaInvalid,
)
from worker_llm_client.execution_models import LlmResult

# Every finish reason that means a policy stopped the reply (repairing it would only be blocked
# again): google-genai 3.4's FinishReason; OpenAI's finish_reason "content_filter"; Anthropic's
# stop_reason "refusal".
BLOCKING_FINISH_REASONS = frozenset(
    {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "MODEL_ARMOR",
        "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
        "content_filter",
        "refusal",
    }
)  # fmt: skip
# The reply was cut off: Gemini's MAX_TOKENS/CONTINUATION, OpenAI's "length", Anthropic's
# "max_tokens" and "model_context_window_exceeded" (the prompt left no room for the rest).
TRUNCATED_FINISH_REASONS = frozenset(
    {"MAX_TOKENS", "CONTINUATION", "length", "max_tokens", "model_context_window_exceeded"}
)
CONTEXT_WINDOW_FINISH_REASONS = frozenset({"model_context_window_exceeded"})
REFUSAL = "refusal"  # the block reason an adapter sets for OpenAI's message.refusal
MAX_REPLY_DEPTH = 64  # nested arrays/objects in a reply; validating one level takes ~5 stack frames
MAX_REPLY_INT_DIGITS = 4300  # CPython's default int/str limit: json.dumps could not write a longer one
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")  # \ud800-\udfff: paired or lone
_MAX_VIOLATIONS = 5
_MAX_FEEDBACK = 10
_MAX_FEEDBACK_LINE = 240
_MAX_RULE = 120


@dataclass(frozen=True)
class OutputSchema:
    """A prompt's parsed outputSchema and its validator, compiled once per schema text."""

    schema: Mapping[str, Any]
    validator: Validator
    declared_names: frozenset[str]  # property names the schema declares: safe to show in messages


@lru_cache(maxsize=128)
def load_schema(text: str) -> OutputSchema:
    if not isinstance(text, str):
        raise SchemaInvalid("outputSchema must be JSON text")
    check_schema_text(text)
    try:
        schema = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise SchemaInvalid(f"outputSchema is not valid JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise SchemaInvalid("outputSchema must be a JSON object")
    check_encodable(schema)
    check_metaschema(schema)
    names = inspect_schema(schema)
    return OutputSchema(schema, build_validator(schema), names)


def classify(result: LlmResult) -> str:
    """The reply's text when it may hold a report; raises for blocked and truncated replies."""
    if not isinstance(result.finish_reason, str | None) or not isinstance(result.block_reason, str | None):
        raise OutputNotJson("the reply's finish or block reason is not a string", "it could not be read")
    if result.block_reason == REFUSAL:
        raise LlmBlocked(f"the model refused to answer (blockReason={REFUSAL})")
    if result.block_reason:
        raise LlmBlocked(f"the prompt was blocked by the model (blockReason={result.block_reason})")
    if result.finish_reason in BLOCKING_FINISH_REASONS:
        raise LlmBlocked(f"the reply was blocked by the model (finishReason={result.finish_reason})")
    if result.finish_reason in CONTEXT_WINDOW_FINISH_REASONS:
        raise LlmTruncated(
            f"the prompt and the reply filled the model's context window (finishReason={result.finish_reason}); "
            "shorten the prompt or ask for a shorter report"
        )
    if result.finish_reason in TRUNCATED_FINISH_REASONS:
        raise LlmTruncated(
            f"the reply hit the output token limit (finishReason={result.finish_reason}); "
            "raise maxOutputTokens in the profile or ask for a shorter report"
        )
    if result.text is None or (isinstance(result.text, str) and not result.text.strip()):
        raise OutputNotJson(f"the reply had no text (finishReason={result.finish_reason})", "it was empty")
    return result.text  # parse_report refuses anything but a str


def reply_outcome(result: LlmResult) -> str:
    """A request's outcome on the ``llm.call`` line: the code of a reply the model blocked or cut
    off, else ``OK`` (whether the text is a report is judged afterwards)."""
    try:
        classify(result)
    except (LlmBlocked, LlmTruncated) as verdict:
        return verdict.code
    except OutputNotJson:
        pass
    return "OK"


def parse_report(text: str, output: OutputSchema, nulls_added: bool = False) -> Any:
    """The report ``text`` holds, valid against ``output``; only ``InvalidOutput`` otherwise.

    ``nulls_added``: the provider was sent optional properties as required and nullable
    (``WireSchema.nulls_added``); the nulls it filled in are dropped before validating.
    (``SchemaInvalid`` only for a validator built without ``load_schema``'s checks.)"""
    report = _load_reply(text)
    if nulls_added:
        report = restore_report(report, output.schema)
    try:
        violations = sorted(output.validator.iter_errors(report), key=lambda e: list(map(str, e.absolute_path)))
    except RecursionError as exc:
        raise OutputNotJson(
            "the reply is nested too deeply to validate against this schema",
            "it nests arrays and objects too deeply: flatten them",
        ) from exc
    except Unresolvable as exc:
        raise SchemaInvalid("outputSchema has a reference that does not resolve locally") from exc
    if violations:
        shown = "; ".join(describe_violation(v, output.declared_names) for v in violations[:_MAX_VIOLATIONS])
        more = f" (+{len(violations) - _MAX_VIOLATIONS} more)" if len(violations) > _MAX_VIOLATIONS else ""
        message = f"{len(violations)} schema violation(s): {shown}{more}"
        raise OutputSchemaMismatch(message, _feedback(violations))
    return report


def report_bytes(report: Any) -> bytes:
    """The report as it is stored: indented JSON in UTF-8. Never fails on what ``parse_report`` returned."""
    return json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8")


def _load_reply(text: object) -> Any:
    """``json.loads`` bounded: only ``OutputNotJson`` for text that is not a JSON document we can hold."""
    if not isinstance(text, str):
        raise OutputNotJson(f"the reply's text is a {type(text).__name__}, not a string", "it was not text")
    where = nesting_overflow(text, MAX_REPLY_DEPTH)
    if where is not None:
        _not_json(text, f"arrays and objects nested deeper than {MAX_REPLY_DEPTH} levels at character {where}")
    try:
        report = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        _not_json(text, f"{exc.msg} at line {exc.lineno} column {exc.colno}", exc)
    except _NumberRefused as exc:
        _not_json(text, exc.reason, exc)
    except (ValueError, RecursionError) as exc:
        _not_json(text, f"it cannot be parsed ({type(exc).__name__})", exc)
    if _SURROGATE_ESCAPE.search(text) or not _encodes(text):  # else every string in it encodes too
        try:
            report_bytes(report)
        except UnicodeEncodeError as exc:  # numbers are finite and nesting is bounded: nothing else can fail
            _not_json(text, "a lone UTF-16 surrogate escape (\\ud800-\\udfff) that UTF-8 cannot encode", exc)
    return report


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_json(text: str, where: str, cause: BaseException | None = None) -> NoReturn:
    """``where`` names positions, sizes and depths, never the reply's own text."""
    message = f"the reply is not JSON ({where}; {len(text)} characters)"
    raise OutputNotJson(message, f"it is not a JSON document ({where})") from cause


class _NumberRefused(ValueError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bounded_int(token: str) -> int:
    if len(token) - token.startswith("-") > MAX_REPLY_INT_DIGITS:
        raise _NumberRefused(f"an integer with more than {MAX_REPLY_INT_DIGITS} digits")
    return int(token)


def _finite_float(token: str) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise _NumberRefused("a number beyond the range of a 64-bit float")
    return value


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


def validate_reply(result: LlmResult, output: OutputSchema, nulls_added: bool = False) -> Any:
    return parse_report(classify(result), output, nulls_added)


def describe_violation(error: ValidationError, declared_names: frozenset[str] = frozenset()) -> str:
    """``$.path: keyword rule`` built from the schema side only, never the instance's values.

    Keys the schema does not declare (the model's own) show as ``*``.
    """
    rule: Any = error.validator_value
    schema: Any = error.schema
    if error.validator == "required" and isinstance(error.instance, dict):
        rule = [name for name in rule if name not in error.instance]
    elif error.validator == "additionalProperties" and isinstance(error.instance, dict):
        rule = f"false ({len(additional_properties(error.instance, schema))} unexpected properties)"
    elif error.validator == "type":
        rule = f"{rule} (got {type(error.instance).__name__})"
    text = json.dumps(rule, ensure_ascii=False, default=str) if not isinstance(rule, str) else rule
    if len(text) > _MAX_RULE:
        text = text[: _MAX_RULE - 1] + "…"
    return f"{_path(error, declared_names)}: {error.validator} {text}"


def _path(error: ValidationError, declared_names: frozenset[str]) -> str:
    parts = (f"[{p}]" if isinstance(p, int) else f".{p}" if p in declared_names else ".*" for p in error.absolute_path)
    return "$" + "".join(parts)
