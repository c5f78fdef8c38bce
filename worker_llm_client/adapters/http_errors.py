"""An LLM provider's HTTP failure, in our taxonomy: one mapping for every provider's adapter.

Each adapter catches its SDK's status error, reads the status code, the server's own message and
the response headers, and calls ``status_error``; the retry hint comes from the headers here (or,
for Gemini, from ``RetryInfo`` in the body first). 429 is LLM_RATE_LIMITED; 408, 504 and timeouts
are LLM_TIMEOUT; 409, 5xx (Anthropic's 529 "overloaded" included) LLM_UNAVAILABLE; 401/403 LLM_AUTH;
every other status (400, 404, 413, 422...) LLM_BAD_REQUEST with the server's message, bounded.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from worker_llm_client.core.bounds import MAX_SERVER_MESSAGE, clip, retry_hint_seconds
from worker_llm_client.errors import LlmAuth, LlmBadRequest, LlmRateLimited, LlmTimeout, LlmUnavailable, StepError

# OpenAI's x-ratelimit-reset-requests/-tokens durations: "1s", "6m0s", "20ms", "1h2m3.5s"
_NUM = r"(\d+(?:\.\d+)?)"
_GO_DURATION = re.compile(rf"^(?:{_NUM}h)?(?:{_NUM}m(?!s))?(?:{_NUM}s)?(?:{_NUM}ms)?$")
# headers saying when a rate limit resets, by provider: OpenAI's durations, Anthropic's RFC 3339 times
_RESET_DURATIONS = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
_RESET_TIMES = (
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-reset",
)


def status_error(
    status: int, model: str, message: str | None, retry_after: float | None, reason: str = ""
) -> StepError:
    """The step error for an HTTP ``status`` answered to a request for ``model``.

    ``message`` is the server's own (it names the rejected field); only LLM_BAD_REQUEST carries it.
    ``reason`` is a short status name (``RESOURCE_EXHAUSTED``, ``overloaded_error``) when known.
    """
    summary = f"HTTP {status} {reason}".strip()
    if status == 429:
        return LlmRateLimited(f"{summary}: model '{model}' is rate limited", retry_after=retry_after)
    if status in (401, 403):
        return LlmAuth(f"{summary}: the credentials were refused for model '{model}'")
    if status in (408, 504):
        return LlmTimeout(f"{summary}: model '{model}' did not answer in time")
    if status == 409 or status >= 500:
        return LlmUnavailable(f"{summary}: model '{model}' is unavailable", retry_after=retry_after)
    if status == 404:
        detail = f" ({server_message(message)})" if message else ""
        return LlmBadRequest(f"{summary}: model '{model}' or its endpoint was not found{detail}")
    return LlmBadRequest(f"{summary}: {server_message(message)}")


def server_message(message: str | None) -> str:
    """The server's own message (it names the rejected field or schema keyword), bounded."""
    return clip(str(message or "request rejected"), MAX_SERVER_MESSAGE)


def header_retry_hint(headers: Any, now: datetime | None = None) -> float | None:
    """Seconds to wait from a response's headers, clamped by ``bounds.retry_hint_seconds``:
    ``retry-after-ms``, else ``Retry-After`` (seconds or an HTTP date), else the latest reset of
    the provider's rate-limit headers (OpenAI's ``x-ratelimit-reset-*``, Anthropic's
    ``anthropic-ratelimit-*-reset``). Junk is no hint."""
    get: Callable[[str], Any] = headers.get if hasattr(headers, "get") else {}.get
    when = now or datetime.now(UTC)
    delay = _header_delay(get, when)
    if delay is None:
        delay = _reset_delay(get, when)
    return retry_hint_seconds(delay)


def _header_delay(get: Callable[[str], Any], now: datetime) -> float | None:
    millis = _number(get("retry-after-ms"))
    if millis is not None:
        return millis / 1000
    raw = get("retry-after")
    seconds = _number(raw)
    if seconds is not None or not isinstance(raw, str):
        return seconds
    return _seconds_until(_http_date(raw), now)


def _reset_delay(get: Callable[[str], Any], now: datetime) -> float | None:
    delays = [_go_duration(get(name)) for name in _RESET_DURATIONS]
    delays += [_seconds_until(_rfc3339(get(name)), now) for name in _RESET_TIMES]
    known = [delay for delay in delays if delay is not None]
    return max(known) if known else None


def _go_duration(raw: Any) -> float | None:
    match = _GO_DURATION.match(raw.strip()) if isinstance(raw, str) and raw.strip() else None
    if match is None:
        return None
    hours, minutes, seconds, millis = (float(part) if part else 0.0 for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds + millis / 1000


def _http_date(raw: str) -> datetime | None:
    try:
        return parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _rfc3339(raw: Any) -> datetime | None:
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds_until(when: datetime | None, now: datetime) -> float | None:
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() - now.timestamp()


def _number(raw: Any) -> float | None:
    try:
        return float(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def body_message(body: Any) -> str | None:
    """The ``message`` of an error body in the shapes providers use: ``{"error": {"message"}}``
    (OpenAI, Gemini) and ``{"type": "error", "error": {"type", "message"}}`` (Anthropic)."""
    error = body.get("error", body) if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else None
    return message if isinstance(message, str) else None
