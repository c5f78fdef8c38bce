"""The LLM port over google-genai: one ``generate`` call is exactly one HTTP request.

SDK retries stay off (no ``retry_options``), automatic function calling and automatic
continuation are disabled, the API version is pinned, and the schema goes out on the wire as
``generationConfig.responseJsonSchema`` — through ``HttpOptions.extra_body``, not the config's
``response_json_schema``: with the latter set the SDK ``json.loads`` every reply's text itself to
fill ``parsed`` (we never read it), and a reply nested 1,000 deep or with a 5,000-digit number
then raises RecursionError/ValueError out of the SDK, losing the reply that our own validation
would have judged OUTPUT_NOT_JSON and repaired. Vendor errors are translated here into our ``StepError`` tree and
nothing else escapes ``generate``: a 200 the SDK cannot parse is LLM_UNAVAILABLE, anything
unforeseen INTERNAL. The caller owns the one retry loop. ``response.text`` is read (never
``parsed``) and thought parts are left out of it; the strings the provider chooses are clipped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pydantic
from google.auth import exceptions as auth_errors
from google.genai import Client, errors, types

from worker_llm_client.adapters.http_errors import header_retry_hint, status_error
from worker_llm_client.adapters.sdk_edge import SdkClients, google_auth_error, step_errors_only
from worker_llm_client.config import Settings
from worker_llm_client.core.bounds import clip, clip_optional, retry_hint_seconds, token_count
from worker_llm_client.errors import LlmAuth, LlmBadRequest, LlmTimeout, LlmUnavailable, StepError
from worker_llm_client.execution_models import LlmRequest, LlmResult, Usage

GEMINI_API_VERSION = "v1beta"
VERTEX_API_VERSION = "v1"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
# what the SDK raises when a 200's body is not a GenerateContentResponse: JSON errors (ValueError),
# pydantic's ValidationError (a ValueError whose text quotes the offending value), and the
# TypeError/AttributeError/LookupError of its converters walking an unexpected shape
_UNPARSABLE = (pydantic.ValidationError, ValueError, TypeError, AttributeError, LookupError)
_MAX_STATUS = 64  # the google.rpc status name of an error body, e.g. RESOURCE_EXHAUSTED


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """Timeouts, then every other transport failure (checked after timeouts), of httpx2 and httpx."""
    timeouts: list[type[BaseException]] = [TimeoutError]
    others: list[type[BaseException]] = [ConnectionError, auth_errors.TransportError]
    for module in ("httpx2", "httpx"):
        try:
            lib = __import__(module)
        except ImportError:
            continue
        timeouts.append(lib.TimeoutException)
        others.append(lib.TransportError)
    return tuple(timeouts), tuple(others)


_TIMEOUTS, _CONNECTION_ERRORS = _transport_errors()


class GeminiClient:
    """``vertex_credentials`` defaults to ADC; tests pass static ones to reach the stub."""

    def __init__(self, settings: Settings, vertex_credentials: Any = None) -> None:
        self.settings = settings
        self.vertex_credentials = vertex_credentials
        self._clients: SdkClients[str, Client] = SdkClients()

    def close(self) -> None:
        self._clients.close()

    def _client(self, provider: str) -> Client:
        try:
            return self._clients.get(provider, lambda: self._build(provider))
        except auth_errors.GoogleAuthError as exc:
            raise google_auth_error(provider, exc) from exc

    def _build(self, provider: str) -> Client:
        if provider == "vertex":
            options = types.HttpOptions(api_version=VERTEX_API_VERSION, base_url=self.settings.vertex_base_url)
            return Client(
                vertexai=True,
                project=self.settings.project,
                location=self.settings.location,
                credentials=self.vertex_credentials,
                http_options=options,
            )
        if provider != "gemini":
            raise LlmBadRequest(f"unknown provider '{provider}'")
        if not self.settings.gemini_api_key:
            raise LlmAuth("GEMINI_API_KEY is not set for provider 'gemini'")
        options = types.HttpOptions(api_version=GEMINI_API_VERSION, base_url=self.settings.gemini_base_url)
        # vertexai=False: left unset, the SDK reads GOOGLE_GENAI_USE_VERTEXAI and may take a gemini
        # profile to Vertex AI; the profile's provider decides.
        return Client(vertexai=False, api_key=self.settings.gemini_api_key, http_options=options)

    def generate(self, request: LlmRequest) -> LlmResult:
        """One model call; raises only ``StepError``."""
        return step_errors_only(request, lambda r: to_result(self._call(r)))

    def _call(self, request: LlmRequest) -> types.GenerateContentResponse:
        client = self._client(request.provider)
        contents, config = to_contents(request), build_config(request)
        try:
            response = client.models.generate_content(model=request.model, contents=contents, config=config)
        except errors.APIError as exc:
            raise translate_api_error(exc, request.model) from exc
        except _TIMEOUTS as exc:
            raise LlmTimeout(f"model request timed out after {request.timeout_seconds}s") from exc
        except _CONNECTION_ERRORS as exc:
            raise LlmUnavailable(f"model endpoint unreachable: {type(exc).__name__}") from exc
        except auth_errors.RefreshError as exc:
            raise google_auth_error(request.provider, exc) from exc
        except auth_errors.GoogleAuthError as exc:
            raise LlmAuth(f"credentials for provider '{request.provider}' failed: {type(exc).__name__}") from exc
        except _UNPARSABLE as exc:  # never str(exc): a ValidationError quotes the model's text
            raise not_a_response(type(exc).__name__) from exc
        if not (
            response.candidates
            or response.prompt_feedback
            or response.usage_metadata
            or response.response_id
            or response.model_version
        ):  # what the SDK makes of `[]`, `"text"`, `null`, `{}` or `{"candidates": "x"}`
            raise not_a_response("no candidates, promptFeedback, usageMetadata, responseId or modelVersion")
        return response


def not_a_response(what: str) -> LlmUnavailable:
    return LlmUnavailable(f"the model endpoint answered with a body that is not a GenerateContentResponse: {what}")


def to_contents(request: LlmRequest) -> list[types.ContentDict]:
    """The turns as plain dicts: the SDK takes ``types.Content`` objects through a duck-typing check
    that costs ~0.8 ms a call (measured by ``make bench``); wire-shaped dicts skip it."""
    return [types.ContentDict(role=t.role, parts=[types.PartDict(text=t.text)]) for t in request.contents]


def build_config(request: LlmRequest) -> types.GenerateContentConfig:
    gen = request.generation
    thinking = types.ThinkingConfig(thinking_budget=gen.thinking_budget) if gen.thinking_budget is not None else None
    schema = {"generationConfig": {"responseJsonSchema": dict(request.response_schema)}}  # see the docstring
    return types.GenerateContentConfig(
        system_instruction=request.system_instruction,
        response_mime_type="application/json",
        temperature=gen.temperature,
        top_p=gen.top_p,
        top_k=gen.top_k,
        max_output_tokens=gen.max_output_tokens,
        seed=gen.seed,
        thinking_config=thinking,
        safety_settings=[
            types.SafetySetting(category=s.category, threshold=s.threshold)  # type: ignore[arg-type]
            for s in request.safety_settings
        ]
        or None,
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False,
        http_options=types.HttpOptions(timeout=_timeout_ms(request.timeout_seconds), extra_body=schema),
    )


def _timeout_ms(seconds: float | None) -> int | None:
    """``HttpOptions.timeout`` in whole milliseconds, at least 1: the SDK reads 0 as "no timeout"."""
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(1, math.ceil(seconds * 1000))


def to_result(response: types.GenerateContentResponse) -> LlmResult:
    candidate = response.candidates[0] if response.candidates else None
    feedback = response.prompt_feedback
    meta = response.usage_metadata
    return LlmResult(
        text=_answer_text(candidate),
        finish_reason=clip_optional(_name(candidate.finish_reason)) if candidate else None,
        block_reason=clip_optional(_name(feedback.block_reason)) if feedback else None,
        model_version=clip_optional(response.model_version),
        response_id=clip_optional(response.response_id),
        usage=Usage(
            prompt_tokens=token_count(meta.prompt_token_count if meta else None),
            output_tokens=token_count(meta.candidates_token_count if meta else None),
            thoughts_tokens=token_count(meta.thoughts_token_count if meta else None),
            cached_tokens=token_count(meta.cached_content_token_count if meta else None),
            total_tokens=token_count(meta.total_token_count if meta else None),
        ),
    )


def _answer_text(candidate: types.Candidate | None) -> str | None:
    """The concatenated non-thought text parts of the first candidate."""
    if candidate is None or candidate.content is None or not candidate.content.parts:
        return None
    texts = [part.text for part in candidate.content.parts if part.text is not None and not part.thought]
    return "".join(texts) if texts else None


def _name(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def translate_api_error(exc: errors.APIError, model: str) -> StepError:
    status = clip(str(exc.status or ""), _MAX_STATUS)
    return status_error(exc.code or 0, model, exc.message, retry_hint(exc), status)


def retry_hint(exc: errors.APIError, now: datetime | None = None) -> float | None:
    """Seconds from ``RetryInfo.retryDelay`` in the error details, else from the headers
    (``http_errors.header_retry_hint``), clamped by ``bounds.retry_hint_seconds``."""
    delay = _retry_info_delay(exc.details)
    if delay is not None:
        return retry_hint_seconds(delay)
    return header_retry_hint(getattr(exc.response, "headers", None), now)


def _retry_info_delay(details: Any) -> float | None:
    body = details if isinstance(details, Mapping) else {}
    error = body.get("error", body)
    items = error.get("details") if isinstance(error, Mapping) else None
    for detail in items if isinstance(items, list) else []:
        if isinstance(detail, Mapping) and str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))  # inf for a thousand digits: clamped by the caller
    return None
