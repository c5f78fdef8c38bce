"""The router: each provider reaches its adapter, built once, and only its own SDK is imported."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.stacks import ROOT
from worker_llm_client.adapters.llm_router import ADAPTERS, Adapter, LlmRouter
from worker_llm_client.config import Settings
from worker_llm_client.errors import LlmBadRequest
from worker_llm_client.execution_models import PROVIDERS, GenerationSettings, LlmRequest, LlmResult, Usage


class Recorder:
    def __init__(self, adapter: Adapter) -> None:
        self.adapter, self.requests, self.closed = adapter, [], False

    requests: list[LlmRequest]

    def generate(self, request: LlmRequest) -> LlmResult:
        self.requests.append(request)
        return LlmResult("{}", "STOP", None, self.adapter.class_name, None, Usage())

    def close(self) -> None:
        self.closed = True


def _request(provider: Any) -> LlmRequest:
    return LlmRequest(provider, "m", None, (), {"type": "object"}, GenerationSettings(), (), None)


def test_every_provider_has_an_adapter() -> None:
    assert set(ADAPTERS) == set(PROVIDERS)


def test_requests_reach_their_providers_adapter_built_once_per_sdk() -> None:
    built: list[Recorder] = []

    def build(adapter: Adapter) -> Recorder:
        built.append(Recorder(adapter))
        return built[-1]

    router = LlmRouter(Settings(project="p"), build=build)
    served = {provider: router.generate(_request(provider)).model_version for provider in PROVIDERS * 2}
    assert served == {
        "gemini": "GeminiClient",
        "vertex": "GeminiClient",
        "openai": "OpenAiClient",
        "openai_compatible": "OpenAiClient",
        "anthropic": "AnthropicClient",
        "anthropic_vertex": "AnthropicClient",
    }
    assert sorted(r.adapter.class_name for r in built) == ["AnthropicClient", "GeminiClient", "OpenAiClient"]
    router.close()
    assert all(r.closed for r in built)


def test_an_unknown_provider_is_a_bad_request() -> None:
    with pytest.raises(LlmBadRequest, match="unknown provider 'cohere'"):
        LlmRouter(Settings(project="p")).generate(_request("cohere"))


_FRESH = """
import json, sys
from worker_llm_client.adapters.llm_router import LlmRouter
from worker_llm_client.config import Settings
router = LlmRouter(Settings(project="p", gemini_api_key="k"))
router.adapter(sys.argv[1])
print(json.dumps(sorted(m for m in ("google.genai", "openai", "anthropic") if m in sys.modules)))
"""


@pytest.mark.parametrize(
    ("provider", "loaded"),
    [("gemini", ["google.genai"]), ("openai_compatible", ["openai"]), ("anthropic", ["anthropic"])],
)
def test_only_the_providers_own_sdk_is_imported(provider: str, loaded: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FRESH, provider], cwd=ROOT, capture_output=True, check=True, text=True
    )
    assert json.loads(result.stdout) == loaded
