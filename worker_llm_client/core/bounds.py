"""Bounds on what outsiders choose: strings a provider or a server picks end up on the step, and a
run document holds at most 1 MiB. Pure; used by the adapters at their edge and by the use case."""

from __future__ import annotations

MAX_PROVIDER_STRING = 256  # responseId, modelVersion, finishReason as stored on the step
MAX_ERROR_MESSAGE = 1024  # error.message on the step; a server's own message is clipped shorter
MAX_SERVER_MESSAGE = 300
MAX_RETRY_HINT_SECONDS = 3600.0  # a server's retry hint beyond an hour is taken as an hour


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def clip_optional(text: object, limit: int = MAX_PROVIDER_STRING) -> str | None:
    """A provider-chosen value as a bounded string, or None when it is absent (or not a string)."""
    return clip(text, limit) if isinstance(text, str) and text else None


def retry_hint_seconds(value: float | None) -> float | None:
    """A server's retry hint clamped to [0, MAX_RETRY_HINT_SECONDS]; NaN and junk are no hint."""
    if value is None or value != value:  # NaN
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float
        return MAX_RETRY_HINT_SECONDS if value > 0 else 0.0
    return min(max(seconds, 0.0), MAX_RETRY_HINT_SECONDS)


MAX_TOKEN_COUNT = 2**53  # a provider's token count above this (or below 0) is no count: Firestore stores int64


def token_count(value: object) -> int:
    """A provider-reported token count as a non-negative int Firestore can store (0 when absent)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKEN_COUNT:
        return 0
    return value
