"""The LLM port over the openai SDK's Chat Completions, for providers ``openai`` and ``openai_compatible``.

One ``generate`` call is exactly one HTTP request: SDK retries off (``max_retries=0``), a bounded
timeout on every call, no streaming, no tools. ``openai`` goes to ``Settings.openai_base_url`` (else
the OpenAI API) with ``OPENAI_API_KEY``; ``openai_compatible`` to the profile's ``endpoint.baseUrl``
with the key in the variable its ``apiKeyEnv`` names (no ``apiKeyEnv``: a placeholder key, which local
servers ignore). One SDK client per (provider, base URL, key variable), built on first use. The SDK
would fill the organization and project headers from ``OPENAI_ORG_ID``/``OPENAI_PROJECT_ID``: they
are left out, so that nothing of the environment but our own ``Settings`` reaches any endpoint.

The schema goes out as its dialect (``core.schema_dialects``) takes it::

    openai_strict       response_format {"type": "json_schema", "json_schema": {name, schema, strict: true}}
    openai              the same with strict: false
    json_object_schema  response_format {"type": "json_object", "schema": ...}   (llama.cpp's server)
    json_object         response_format {"type": "json_object"}, the schema appended to the system message

``max_completion_tokens`` for OpenAI, ``max_tokens`` (what llama.cpp, vLLM and the rest read) for a
compatible endpoint, which also gets ``top_k`` in the body; ``thinking_budget`` and safety settings
are not Chat Completions parameters. The reply is read from the raw body (``with_raw_response``),
never through the SDK's models: ``choices[0].message.content``, a string or (some compatible servers)
a list of parts whose ``text`` parts are the answer; ``reasoning_content`` is not. A set
``message.refusal`` is ``block_reason`` "refusal" with no text (the refusal is model output: never
logged). Usage: ``prompt_tokens`` (cached included), ``reasoning_tokens`` out of ``completion_tokens``
as thoughts, the rest as output. Provider-chosen strings are clipped, counts bounded.

Errors are translated here and nothing else escapes ``generate``: a status -> ``http_errors``, a
timeout -> LLM_TIMEOUT, no connection -> LLM_UNAVAILABLE, a 200 that is not a chat completion (not
JSON, no ``choices``) -> LLM_UNAVAILABLE, a missing key -> LLM_AUTH naming the variable (never a
value), anything unforeseen -> INTERNAL. Only a JSON error object's ``message`` is quoted (for bad
requests, by ``http_errors``), with the request's key redacted should a server echo it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import openai

from worker_llm_client.adapters.http_errors import body_message, header_retry_hint, status_error
from worker_llm_client.adapters.sdk_edge import (
    DEFAULT_TIMEOUT_SECONDS,
    SdkClients,
    call_timeout,
    request_wire_schema,
    step_errors_only,
    with_schema_instruction,
)
from worker_llm_client.config import Settings
from worker_llm_client.core.bounds import clip, clip_optional, token_count
from worker_llm_client.errors import LlmAuth, LlmBadRequest, LlmTimeout, LlmUnavailable, StepError
from worker_llm_client.execution_models import LlmRequest, LlmResult, Usage, WireSchema

OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_KEY_ENV = "OPENAI_API_KEY"
UNUSED_KEY = "unused"  # sent to a compatible endpoint without apiKeyEnv: the SDK needs some key
SCHEMA_NAME = "report"
REFUSAL = "refusal"
REDACTED = "[redacted]"
_ROLES = {"user": "user", "model": "assistant"}
_NO_ACCOUNT_HEADERS = cast(dict[str, str], {"OpenAI-Organization": openai.omit, "OpenAI-Project": openai.omit})
_MAX_REASON = 64  # the error object's type, e.g. invalid_request_error
_MAX_NAME = 64  # an apiKeyEnv named in a message
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


class _Target(NamedTuple):
    provider: str
    base_url: str
    key_env: str | None


class OpenAiClient:
    """Implements ``ports.LlmClient``; builds nothing until the first request."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._clients: SdkClients[_Target, openai.OpenAI] = SdkClients()

    def close(self) -> None:
        self._clients.close()

    def generate(self, request: LlmRequest) -> LlmResult:
        """One model call; raises only ``StepError``."""
        return step_errors_only(request, lambda r: to_result(self._call(r)))

    def _call(self, request: LlmRequest) -> dict[str, Any]:
        target, key = self._target(request)
        client = self._client(target, key)
        params, timeout = build_params(request, request_wire_schema(request)), call_timeout(request.timeout_seconds)
        try:
            raw = client.chat.completions.with_raw_response.create(**params, timeout=timeout)
        except openai.APIStatusError as exc:
            raise translate_status_error(exc, request.model, key) from exc
        except openai.APITimeoutError as exc:
            raise LlmTimeout(f"model request timed out after {timeout:g}s") from exc
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__ or exc).__name__
            raise LlmUnavailable(f"model endpoint unreachable: {cause}") from exc
        return read_body(raw.http_response.content)

    def _target(self, request: LlmRequest) -> tuple[_Target, str]:
        """Where the request goes and the key it carries; LlmAuth names a missing key's variable."""
        if request.provider == "openai":
            if not self.settings.openai_api_key:
                raise LlmAuth(f"{OPENAI_KEY_ENV} is not set for provider 'openai'")
            base_url = self.settings.openai_base_url or OPENAI_BASE_URL
            return _Target("openai", base_url, OPENAI_KEY_ENV), self.settings.openai_api_key
        if request.provider != "openai_compatible":
            raise LlmBadRequest(f"provider '{request.provider}' is not served by the OpenAI adapter")
        endpoint = request.endpoint
        if endpoint is None:
            raise LlmBadRequest(f"model '{request.model}' of provider 'openai_compatible' has no endpoint")
        if not _is_http_url(endpoint.base_url):
            raise LlmBadRequest(f"the endpoint of model '{request.model}' is not an http(s) URL")
        target = _Target("openai_compatible", endpoint.base_url, endpoint.api_key_env)
        if endpoint.api_key_env is None:
            return target, UNUSED_KEY
        key = self.settings.endpoint_keys.get(endpoint.api_key_env)
        if not key:
            name = clip(endpoint.api_key_env, _MAX_NAME)
            raise LlmAuth(f"{name} is not set for the endpoint of model '{request.model}'")
        return target, key

    def _client(self, target: _Target, key: str) -> openai.OpenAI:
        return self._clients.get(
            target,
            lambda: openai.OpenAI(
                api_key=key,
                base_url=target.base_url,
                max_retries=0,  # our loop is the only one
                timeout=DEFAULT_TIMEOUT_SECONDS,
                default_headers=_NO_ACCOUNT_HEADERS,
            ),
        )


def _is_http_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError for a port that is not a number
    except ValueError:  # or an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and (port is None or port > 0)


def build_params(request: LlmRequest, ws: WireSchema) -> dict[str, Any]:
    """The keyword arguments of ``chat.completions.create`` (the timeout aside)."""
    gen = request.generation
    response_format, system = _response_format(request, ws)
    compatible = request.provider == "openai_compatible"
    params: dict[str, Any] = {
        "model": request.model,
        "messages": to_messages(request, system),
        "response_format": response_format,
    }
    optional = {
        "temperature": gen.temperature,
        "top_p": gen.top_p,
        "seed": gen.seed,
        "max_tokens" if compatible else "max_completion_tokens": gen.max_output_tokens,
    }
    params |= {name: value for name, value in optional.items() if value is not None}
    if compatible and gen.top_k is not None:
        params["extra_body"] = {"top_k": gen.top_k}
    return params


def _response_format(request: LlmRequest, ws: WireSchema) -> tuple[dict[str, Any], str | None]:
    """``response_format`` and the system message for the schema's dialect."""
    schema = dict(ws.schema if ws.schema is not None else request.response_schema)
    if ws.dialect in ("openai_strict", "openai"):
        spec = {"name": SCHEMA_NAME, "schema": schema, "strict": ws.dialect == "openai_strict"}
        return {"type": "json_schema", "json_schema": spec}, request.system_instruction
    if ws.dialect == "json_object_schema":  # a grammar shapes the reply; the model never sees the schema
        return {"type": "json_object", "schema": schema}, with_schema_instruction(request.system_instruction, schema)
    if ws.dialect == "json_object":
        return {"type": "json_object"}, with_schema_instruction(request.system_instruction, schema)
    raise LlmBadRequest(f"schema dialect '{ws.dialect}' cannot be sent to provider '{request.provider}'")


def to_messages(request: LlmRequest, system: str | None) -> list[dict[str, str]]:
    head = [] if system is None else [{"role": "system", "content": system}]
    return head + [{"role": _ROLES[turn.role], "content": turn.text} for turn in request.contents]


def not_a_response(what: str) -> LlmUnavailable:
    return LlmUnavailable(f"the model endpoint answered with a body that is not a ChatCompletion: {what}")


def _kind(value: Any) -> str:
    return _JSON_KINDS.get(type(value), "object")


def read_body(content: bytes) -> dict[str, Any]:
    """The 200's body as a chat completion with at least one choice; never quotes the body."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise not_a_response(type(exc).__name__) from exc
    if not isinstance(body, dict):
        raise not_a_response(f"a JSON {_kind(body)}")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise not_a_response("an error object and no choices" if "error" in body else "no choices")
    if not isinstance(choices[0], dict):
        raise not_a_response(f"choices[0] is a JSON {_kind(choices[0])}")
    return body


def to_result(body: Mapping[str, Any]) -> LlmResult:
    choice = body["choices"][0]
    message = choice.get("message")
    if message is None:
        message = {}
    elif not isinstance(message, dict):
        raise not_a_response(f"choices[0].message is a JSON {_kind(message)}")
    refused = bool(message.get("refusal"))
    return LlmResult(
        text=None if refused else _answer_text(message.get("content")),
        finish_reason=clip_optional(choice.get("finish_reason")),
        block_reason=REFUSAL if refused else None,
        model_version=clip_optional(body.get("model")),
        response_id=clip_optional(body.get("id")),
        usage=to_usage(body.get("usage")),
    )


def _answer_text(content: Any) -> str | None:
    """A string as is; of a list of parts, the ``text`` parts joined (None when there are none)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise not_a_response(f"message.content is a JSON {_kind(content)}")
    texts = [
        part["text"]
        for part in content
        if isinstance(part, dict) and part.get("type", "text") == "text" and isinstance(part.get("text"), str)
    ]
    return "".join(texts) if texts else None


def to_usage(usage: Any) -> Usage:
    """OpenAI's counts in ours, without double counting: cached tokens are inside the prompt and
    reasoning tokens inside the completion; a missing or malformed count is 0."""
    counts = usage if isinstance(usage, dict) else {}
    prompt = token_count(counts.get("prompt_tokens"))
    completion = token_count(counts.get("completion_tokens"))
    cached = min(token_count(_detail(counts, "prompt_tokens_details", "cached_tokens")), prompt)
    reasoning = min(token_count(_detail(counts, "completion_tokens_details", "reasoning_tokens")), completion)
    total = token_count(counts.get("total_tokens")) or prompt + completion
    return Usage(
        prompt_tokens=prompt,
        output_tokens=completion - reasoning,
        thoughts_tokens=reasoning,
        cached_tokens=cached,
        total_tokens=total,
    )


def _detail(counts: Mapping[str, Any], group: str, name: str) -> Any:
    details = counts.get(group)
    return details.get(name) if isinstance(details, dict) else None


def translate_status_error(exc: openai.APIStatusError, model: str, key: str = "") -> StepError:
    """``exc.body`` is the error object (the SDK unwraps ``{"error": ...}``) or the body's text, which
    is not quoted; a server that echoes the request's ``key`` in its message gets it redacted."""
    reason = next((r for r in (exc.type, exc.code) if isinstance(r, str) and r), "")
    message = body_message(exc.body)
    hint = header_retry_hint(exc.response.headers)
    reason, message = _redact(reason, key), None if message is None else _redact(message, key)
    return status_error(exc.status_code, model, message, hint, clip(reason, _MAX_REASON))


def _redact(text: str, key: str) -> str:
    return text.replace(key, REDACTED) if key and key != UNUSED_KEY else text
