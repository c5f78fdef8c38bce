"""What every model adapter does the same way: SDK clients built on first use, one per key and
closed together; the schema as the request's provider takes it; and the edge that lets nothing
but a ``StepError`` out of ``generate`` (anything unforeseen is INTERNAL, never its text)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Any, Generic, Protocol, TypeVar

from worker_llm_client.core.schema_dialects import wire_schema
from worker_llm_client.errors import Internal, LlmAuth, LlmUnavailable, StepError
from worker_llm_client.execution_models import LlmRequest, LlmResult, WireSchema

DEFAULT_TIMEOUT_SECONDS = 600.0  # a profile without timeoutSeconds: bounded, unlike the SDKs' defaults
MIN_TIMEOUT_SECONDS = 0.001  # a budget of 0 (or less) still times out, after a millisecond
SCHEMA_INSTRUCTION = "Reply with one JSON object that satisfies this JSON Schema:\n"


class _Closable(Protocol):
    def close(self) -> None: ...


K = TypeVar("K", bound=Hashable)
C = TypeVar("C", bound=_Closable)


class SdkClients(Generic[K, C]):
    """One SDK client per key (a provider, an endpoint and its key), built under a lock."""

    def __init__(self) -> None:
        self._clients: dict[K, C] = {}
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], C]) -> C:
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = build()
            return client

    def __len__(self) -> int:
        return len(self._clients)

    def __iter__(self) -> Iterator[K]:
        with self._lock:
            return iter(list(self._clients))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()


def google_auth_error(provider: str, exc: Exception) -> StepError:
    """A Google credentials failure (the adapters that reach Vertex AI): the metadata server or the
    token endpoint failing is transient (LLM_UNAVAILABLE), having no usable credentials LLM_AUTH."""
    from google.auth import exceptions as auth_errors

    if isinstance(exc, auth_errors.TransportError | auth_errors.RefreshError):
        return LlmUnavailable(f"credentials for provider '{provider}' could not be refreshed: {type(exc).__name__}")
    return LlmAuth(f"no usable credentials for provider '{provider}': {type(exc).__name__}")


def step_errors_only(request: LlmRequest, call: Callable[[LlmRequest], LlmResult]) -> LlmResult:
    """``call(request)``, raising only ``StepError``."""
    try:
        return call(request)
    except StepError:
        raise
    except Exception as exc:
        raise Internal.from_exception(exc, f"calling model '{request.model}'") from exc


def request_wire_schema(request: LlmRequest) -> WireSchema:
    """The compiled schema the caller set, else compiled here for the request's provider."""
    if request.wire_schema is not None:
        return request.wire_schema
    return wire_schema(request.response_schema, request.provider, request.structured_output)


def call_timeout(seconds: float | None) -> float:
    """A request's timeout: the profile's, at least a millisecond; none (or not finite) is 600 s."""
    if seconds is None or not math.isfinite(seconds):
        return DEFAULT_TIMEOUT_SECONDS
    return max(seconds, MIN_TIMEOUT_SECONDS)


def with_schema_instruction(system: str | None, schema: Mapping[str, Any]) -> str:
    """JSON mode (no schema on the wire): the system instruction followed by the schema itself."""
    instruction = SCHEMA_INSTRUCTION + json.dumps(dict(schema), ensure_ascii=False)
    return f"{system}\n\n{instruction}" if system else instruction
