"""The LLM port over the anthropic SDK's Messages API: one ``generate`` call is exactly one HTTP request.

Providers: ``anthropic`` (the Anthropic API, ``ANTHROPIC_API_KEY``) and ``anthropic_vertex`` (Claude on
Vertex AI through ``AnthropicVertex``: ADC unless credentials are injected, ``GOOGLE_CLOUD_LOCATION`` as the
region, ``VERTEX_BASE_URL`` as the endpoint's root, to which ``/v1`` is added as the SDK expects).

SDK retries are off (``max_retries=0``: the caller owns the one retry loop), every call carries a bounded
timeout, the SDK's own tracing is off (``call_model`` opens the span) and the API version is the SDK's
(``anthropic-version: 2026-10-21``). The schema goes out as structured outputs, ``output_config={"format":
{"type": "json_schema", "schema": ...}}`` (GA in this SDK: no beta header); a schema the provider cannot take
goes into the system prompt instead. ``temperature``/``top_p``/``top_k`` are no longer parameters of
``messages.create`` in SDK 2.x: a profile that sets them sends them through ``extra_body``, and a model that
rejects them answers a 400 naming the field (LLM_BAD_REQUEST).

The reply is read raw (``with_raw_response``) and judged here: the SDK builds a ``Message`` without
validating it, so ``{}``, ``[]`` or an HTML page would reach us as an empty Message, a list or a string.
Vendor errors are translated into our ``StepError`` tree and nothing else escapes ``generate``: a 200
that is not a Message is LLM_UNAVAILABLE, anything unforeseen INTERNAL. The answer is the ``text`` blocks
concatenated (``thinking``/``redacted_thinking`` left out); strings the provider chooses are clipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from anthropic import Anthropic, AnthropicVertex, APIConnectionError, APIStatusError, APITimeoutError, not_given
from google.auth import exceptions as auth_errors

from worker_llm_client.adapters.http_errors import body_message, header_retry_hint, status_error
from worker_llm_client.adapters.sdk_edge import (
    DEFAULT_TIMEOUT_SECONDS,
    SdkClients,
    call_timeout,
    google_auth_error,
    request_wire_schema,
    step_errors_only,
    with_schema_instruction,
)
from worker_llm_client.config import Settings
from worker_llm_client.core.bounds import clip, clip_optional, token_count
from worker_llm_client.errors import LlmAuth, LlmBadRequest, LlmTimeout, LlmUnavailable, StepError
from worker_llm_client.execution_models import LlmRequest, LlmResult, Usage, WireSchema

ANTHROPIC_API_URL = "https://api.anthropic.com"
VERTEX_API_VERSION = "v1"  # AnthropicVertex's base URL ends in it; VERTEX_BASE_URL is the root
DEFAULT_MAX_TOKENS = 4096  # max_tokens is required by the Messages API
MIN_THINKING_BUDGET = 1024  # the API's minimum budget_tokens; below it thinking is not requested
SAMPLING = ("temperature", "top_p", "top_k")  # not create() parameters in SDK 2.x: sent via extra_body
_ROLES = {"user": "user", "model": "assistant"}
_MAX_REASON = 64  # the error type of an error body, e.g. overloaded_error
_Sdk = Anthropic | AnthropicVertex


class AnthropicClient:
    """``vertex_credentials`` defaults to ADC; tests pass static ones to reach the stub."""

    def __init__(self, settings: Settings, vertex_credentials: Any = None) -> None:
        self.settings = settings
        self.vertex_credentials = vertex_credentials
        self._clients: SdkClients[str, _Sdk] = SdkClients()

    def close(self) -> None:
        self._clients.close()

    def _client(self, provider: str) -> _Sdk:
        return self._clients.get(provider, lambda: self._build(provider))

    def _build(self, provider: str) -> _Sdk:
        """No network here: AnthropicVertex loads and refreshes credentials on the first request."""
        if provider == "anthropic_vertex":
            return AnthropicVertex(
                region=self.settings.location,
                project_id=self.settings.project or not_given,  # not given: the ADC's project
                credentials=self.vertex_credentials,
                base_url=vertex_url(self.settings.vertex_base_url),
                max_retries=0,
                timeout=DEFAULT_TIMEOUT_SECONDS,
                open_telemetry=False,
            )
        if provider != "anthropic":
            raise LlmBadRequest(f"unknown provider '{provider}'")
        if not self.settings.anthropic_api_key:
            raise LlmAuth("ANTHROPIC_API_KEY is not set for provider 'anthropic'")
        return Anthropic(
            api_key=self.settings.anthropic_api_key,
            base_url=self.settings.anthropic_base_url or ANTHROPIC_API_URL,
            max_retries=0,
            timeout=DEFAULT_TIMEOUT_SECONDS,
            open_telemetry=False,
        )

    def generate(self, request: LlmRequest) -> LlmResult:
        """One model call; raises only ``StepError``."""
        return step_errors_only(request, lambda r: to_result(self._call(r)))

    def _call(self, request: LlmRequest) -> Any:
        client = self._client(request.provider)
        params = build_params(request, request_wire_schema(request))
        try:
            raw = client.messages.with_raw_response.create(**params, timeout=call_timeout(request.timeout_seconds))
            body = raw.read()
        except APIStatusError as exc:
            raise translate_api_error(exc, request.model) from exc
        except APITimeoutError as exc:
            raise LlmTimeout(f"model request timed out after {call_timeout(request.timeout_seconds)}s") from exc
        except APIConnectionError as exc:
            raise LlmUnavailable(f"model endpoint unreachable: {type(exc.__cause__ or exc).__name__}") from exc
        except auth_errors.GoogleAuthError as exc:
            raise google_auth_error(request.provider, exc) from exc
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:  # never str(exc): it may quote the body
            raise not_a_response(type(exc).__name__) from exc


def vertex_url(root: str | None) -> str | None:
    """AnthropicVertex's base URL for a ``VERTEX_BASE_URL`` root (None: the SDK's regional default)."""
    if not root:
        return None
    root = root.rstrip("/")
    return root if root.endswith(f"/{VERTEX_API_VERSION}") else f"{root}/{VERTEX_API_VERSION}"


def build_params(request: LlmRequest, ws: WireSchema) -> dict[str, Any]:
    """``messages.create`` keyword arguments: the conversation, the schema and the generation settings."""
    gen = request.generation
    budget = gen.thinking_budget if gen.thinking_budget and gen.thinking_budget >= MIN_THINKING_BUDGET else None
    # budget_tokens counts toward max_tokens and must stay below it: without a profile limit, the default
    # is the room left for the answer once thinking has had its budget
    max_tokens = gen.max_output_tokens or DEFAULT_MAX_TOKENS + (budget or 0)
    params: dict[str, Any] = {"model": request.model, "max_tokens": max_tokens, "messages": to_messages(request)}
    system = system_prompt(request, ws)
    if system:
        params["system"] = system
    if budget is not None:
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if ws.schema is not None:
        params["output_config"] = {"format": {"type": "json_schema", "schema": dict(ws.schema)}}
    sampling = {name: getattr(gen, name) for name in SAMPLING if getattr(gen, name) is not None}
    if sampling:
        params["extra_body"] = sampling
    return params


def to_messages(request: LlmRequest) -> list[dict[str, str]]:
    return [{"role": _ROLES[turn.role], "content": turn.text} for turn in request.contents]


def system_prompt(request: LlmRequest, ws: WireSchema) -> str | None:
    """The system instruction; in JSON mode (no schema on the wire) followed by the schema itself."""
    if ws.schema is not None:
        return request.system_instruction or None
    return with_schema_instruction(request.system_instruction, request.response_schema)


def not_a_response(what: str) -> LlmUnavailable:
    return LlmUnavailable(f"the model endpoint answered with a body that is not a Message: {what}")


def to_result(body: Any) -> LlmResult:
    """An ``LlmResult`` from a Messages API reply body (already JSON-decoded), judged field by field."""
    if not isinstance(body, Mapping) or not isinstance(body.get("content"), list):
        raise not_a_response("no content list")
    stop_reason = body.get("stop_reason")
    if stop_reason is not None and not isinstance(stop_reason, str):
        raise not_a_response("a stop_reason that is not a string")
    return LlmResult(
        text=answer_text(body["content"]),
        finish_reason=clip_optional(stop_reason),
        block_reason=None,  # a refusal is stop_reason "refusal"; the core classifies it
        model_version=clip_optional(body.get("model")),
        response_id=clip_optional(body.get("id")),
        usage=to_usage(body.get("usage")),
    )


def answer_text(blocks: list[Any]) -> str | None:
    """The ``text`` blocks concatenated (thinking and other blocks left out); None without any."""
    texts: list[str] = []
    for block in blocks:
        if not isinstance(block, Mapping):
            raise not_a_response("a content block that is not an object")
        if block.get("type") != "text":
            continue
        if not isinstance(block.get("text"), str):
            raise not_a_response("a text block whose text is not a string")
        texts.append(block["text"])
    return "".join(texts) if texts else None


def to_usage(usage: Any) -> Usage:
    """Anthropic's ``input_tokens`` leaves out cache reads and writes: the prompt is the sum of the three.
    Thinking is part of ``output_tokens`` and not reported apart."""
    counts = usage if isinstance(usage, Mapping) else {}
    cache_read = token_count(counts.get("cache_read_input_tokens"))
    prompt = (
        token_count(counts.get("input_tokens")) + cache_read + token_count(counts.get("cache_creation_input_tokens"))
    )
    output = token_count(counts.get("output_tokens"))
    return Usage(
        prompt_tokens=prompt,
        output_tokens=output,
        thoughts_tokens=0,
        cached_tokens=cache_read,
        total_tokens=prompt + output,
    )


def translate_api_error(exc: APIStatusError, model: str) -> StepError:
    """The status, the server's message and error type from the body (Anthropic's ``{"type": "error",
    "error": {"type", "message"}}`` or, from Vertex AI itself, Google's ``{"error": {"status", "message"}}``)
    and the retry hint from the headers."""
    return status_error(
        exc.status_code, model, body_message(exc.body), header_retry_hint(exc.response.headers), error_type(exc.body)
    )


def error_type(body: Any) -> str:
    error = body.get("error") if isinstance(body, Mapping) else None
    if not isinstance(error, Mapping):
        return ""
    kind = error.get("type", error.get("status"))
    return clip(kind, _MAX_REASON) if isinstance(kind, str) else ""
