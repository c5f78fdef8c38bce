"""The ``LlmClient`` over every provider: a request goes to its provider's adapter.

Each adapter (and its SDK: google-genai, openai, anthropic) is imported and built on the first
request for one of its providers, so an instance serving only Gemini profiles never loads the
OpenAI or Anthropic SDK (about 0.6 s and 1.6 s of import here).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from worker_llm_client.adapters.sdk_edge import SdkClients
from worker_llm_client.config import Settings
from worker_llm_client.errors import LlmBadRequest
from worker_llm_client.execution_models import LlmRequest, LlmResult
from worker_llm_client.ports import LlmClient


class Adapter(NamedTuple):
    module: str
    class_name: str
    reaches_vertex: bool  # built with ``vertex_credentials`` (None: ADC)


_GOOGLE = Adapter("worker_llm_client.adapters.gemini_client", "GeminiClient", reaches_vertex=True)
_OPENAI = Adapter("worker_llm_client.adapters.openai_client", "OpenAiClient", reaches_vertex=False)
_ANTHROPIC = Adapter("worker_llm_client.adapters.anthropic_client", "AnthropicClient", reaches_vertex=True)
ADAPTERS: Mapping[str, Adapter] = {
    "gemini": _GOOGLE,
    "vertex": _GOOGLE,
    "openai": _OPENAI,
    "openai_compatible": _OPENAI,
    "anthropic": _ANTHROPIC,
    "anthropic_vertex": _ANTHROPIC,
}


class ModelAdapter(LlmClient, Protocol):
    def close(self) -> None: ...


class LlmRouter:
    """``build(adapter)`` makes an adapter; the default imports its module and calls the class with
    ``settings`` (and ``vertex_credentials`` for the adapters that reach Vertex AI)."""

    def __init__(
        self,
        settings: Settings,
        vertex_credentials: Any = None,
        build: Callable[[Adapter], ModelAdapter] | None = None,
    ) -> None:
        self.settings, self.vertex_credentials = settings, vertex_credentials
        self._build = build or self._import
        self._adapters: SdkClients[str, ModelAdapter] = SdkClients()

    def generate(self, request: LlmRequest) -> LlmResult:
        return self.adapter(request.provider).generate(request)

    def adapter(self, provider: str) -> ModelAdapter:
        target = ADAPTERS.get(provider)
        if target is None:
            raise LlmBadRequest(f"unknown provider '{provider}'")
        return self._adapters.get(target.module, lambda: self._build(target))

    def close(self) -> None:
        self._adapters.close()

    def _import(self, adapter: Adapter) -> ModelAdapter:
        cls = getattr(importlib.import_module(adapter.module), adapter.class_name)
        if adapter.reaches_vertex:
            return cls(self.settings, vertex_credentials=self.vertex_credentials)  # type: ignore[no-any-return]
        return cls(self.settings)  # type: ignore[no-any-return]
