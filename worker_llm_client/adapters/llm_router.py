"""The ``LlmClient`` over every provider: a request goes to its provider's adapter.

Each adapter (and its SDK: google-genai, openai, anthropic) is imported and built on the first
request for one of its providers, so an instance serving only Gemini profiles never loads the
OpenAI or Anthropic SDK (about 0.6 s and 1.6 s of import here).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

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


class LlmRouter:
    """``build(adapter)`` makes an adapter; the default imports its module and calls the class with
    ``settings`` (and ``vertex_credentials`` for the adapters that reach Vertex AI)."""

    def __init__(
        self,
        settings: Settings,
        vertex_credentials: Any = None,
        build: Callable[[Adapter], LlmClient] | None = None,
    ) -> None:
        self.settings, self.vertex_credentials = settings, vertex_credentials
        self._build = build or self._import
        self._adapters: dict[str, LlmClient] = {}
        self._lock = threading.Lock()

    def generate(self, request: LlmRequest) -> LlmResult:
        return self.adapter(request.provider).generate(request)

    def adapter(self, provider: str) -> LlmClient:
        target = ADAPTERS.get(provider)
        if target is None:
            raise LlmBadRequest(f"unknown provider '{provider}'")
        with self._lock:
            if target.module not in self._adapters:
                self._adapters[target.module] = self._build(target)
            return self._adapters[target.module]

    def close(self) -> None:
        with self._lock:
            adapters, self._adapters = list(self._adapters.values()), {}
        for adapter in adapters:
            close = getattr(adapter, "close", None)
            if close is not None:
                close()

    def _import(self, adapter: Adapter) -> LlmClient:
        cls = getattr(importlib.import_module(adapter.module), adapter.class_name)
        if adapter.reaches_vertex:
            return cls(self.settings, vertex_credentials=self.vertex_credentials)  # type: ignore[no-any-return]
        return cls(self.settings)  # type: ignore[no-any-return]
