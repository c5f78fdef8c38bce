"""The LLM layer: each provider's adapter against a direct call of its SDK, same stub, same request.

Each stub runs in a process of its own; the two calls are interleaved round by round, and each
provider's answer through the adapter must equal the direct call's (``sameAnswer``), so both sent
the same request. The headline is the provider furthest over its SDK at p95.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

from benchmarks.measure import ROOT, percentiles, rounded, timed_us

if TYPE_CHECKING:
    from worker_llm_client.execution_models import Endpoint, LlmRequest, Provider


@contextmanager
def stub_process(module: str = "devstack.gemini_stub") -> Iterator[str]:
    """A model stub (``devstack.<x>_stub``) in a process of its own (in this one, its threads would
    take the GIL from the client being measured); yields its root URL."""
    from devstack.services import ManagedProcess, accepts_tcp, free_port, wait_until

    name = "bench-" + module.rsplit(".", 1)[-1].replace("_", "-")
    port = free_port()
    command = [sys.executable, "-m", module, "--port", str(port)]
    stub = ManagedProcess(name, ROOT / ".devstack" / "bench-logs", command, cwd=ROOT).start()
    try:
        wait_until(lambda: accepts_tcp("127.0.0.1", port), 30, what=name)
        yield f"http://127.0.0.1:{port}"
    finally:
        stub.stop()


Call = Callable[[], str | None]  # one model call, the answer's text
LLM_SYSTEM, LLM_USER, LLM_TIMEOUT, LLM_TEMPERATURE = "Be terse.", "Weekly report.", 30.0, 0.2


def _llm_request(
    provider: Provider, model: str, schema: dict[str, Any], endpoint: Endpoint | None = None
) -> LlmRequest:
    from worker_llm_client.execution_models import GenerationSettings, LlmRequest, Turn

    return LlmRequest(provider, model, LLM_SYSTEM, (Turn("user", LLM_USER),), schema,
                      GenerationSettings(temperature=LLM_TEMPERATURE), (), LLM_TIMEOUT, endpoint)  # fmt: skip


@contextmanager
def _gemini_pair(root: str, schema: dict[str, Any]) -> Iterator[tuple[Call, Call]]:
    """``GeminiClient`` against ``models.generate_content`` with a config built once."""
    from google.genai import Client, types

    from worker_llm_client.adapters.gemini_client import GeminiClient
    from worker_llm_client.config import Settings

    request = _llm_request("gemini", "gemini-2.5-flash", schema)
    config = types.GenerateContentConfig(
        system_instruction=LLM_SYSTEM, response_mime_type="application/json", response_json_schema=schema,
        temperature=LLM_TEMPERATURE, automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False, http_options=types.HttpOptions(timeout=int(LLM_TIMEOUT * 1000)),
    )  # fmt: skip
    ours = GeminiClient(Settings(project="bench", gemini_api_key="k", gemini_base_url=root))
    direct = Client(api_key="k", http_options=types.HttpOptions(base_url=root, api_version="v1beta"))

    def sdk() -> str | None:
        return direct.models.generate_content(model=request.model, contents=LLM_USER, config=config).text

    with closing(ours), closing(direct):
        yield (lambda: ours.generate(request).text), sdk


@contextmanager
def _openai_pair(root: str, schema: dict[str, Any], compatible: bool) -> Iterator[tuple[Call, Call]]:
    """``OpenAiClient`` against ``chat.completions.create`` with the ``response_format`` it sends:
    strict json_schema (``openai``), or llama.cpp's json_object with a schema (``openai_compatible``)."""
    import openai

    from worker_llm_client.adapters.openai_client import OpenAiClient
    from worker_llm_client.config import Settings
    from worker_llm_client.execution_models import Endpoint

    base_url = f"{root}/v1"  # the OpenAI stub's routes, as the real API's, are under /v1
    response_format: Any
    system = LLM_SYSTEM
    if compatible:  # a grammar the model cannot read: the schema is stated in the instructions too
        request = _llm_request("openai_compatible", "local-model", schema, Endpoint(base_url, "json_object_schema"))
        response_format = {"type": "json_object", "schema": _sent_schema(request)}
        system = f"{LLM_SYSTEM}\n\nReply with one JSON object that satisfies this JSON Schema:\n" + json.dumps(
            _sent_schema(request), ensure_ascii=False
        )
    else:
        request = _llm_request("openai", "gpt-5-mini", schema)
        spec = {"name": "report", "schema": _sent_schema(request), "strict": True}
        response_format = {"type": "json_schema", "json_schema": spec}
    ours = OpenAiClient(Settings(project="bench", openai_api_key="k", openai_base_url=base_url))
    direct = openai.OpenAI(api_key="k", base_url=base_url, max_retries=0, timeout=LLM_TIMEOUT)
    messages: Any = [{"role": "system", "content": system}, {"role": "user", "content": LLM_USER}]

    def sdk() -> str | None:
        completion = direct.chat.completions.create(
            model=request.model, messages=messages, response_format=response_format, temperature=LLM_TEMPERATURE
        )
        return completion.choices[0].message.content

    with closing(ours), closing(direct):
        yield (lambda: ours.generate(request).text), sdk


@contextmanager
def _anthropic_pair(root: str, schema: dict[str, Any]) -> Iterator[tuple[Call, Call]]:
    """``AnthropicClient`` against ``messages.create`` with structured outputs (``output_config``);
    SDK tracing off in both (the adapter leaves the span to ``call_model``)."""
    import anthropic

    from worker_llm_client.adapters.anthropic_client import DEFAULT_MAX_TOKENS, AnthropicClient
    from worker_llm_client.config import Settings

    request = _llm_request("anthropic", "claude-sonnet-4-6", schema)
    output_config: Any = {"format": {"type": "json_schema", "schema": _sent_schema(request)}}
    ours = AnthropicClient(Settings(project="bench", anthropic_api_key="k", anthropic_base_url=root))
    direct = anthropic.Anthropic(api_key="k", base_url=root, max_retries=0, timeout=LLM_TIMEOUT, open_telemetry=False)

    def sdk() -> str | None:
        message = direct.messages.create(
            model=request.model, max_tokens=DEFAULT_MAX_TOKENS, system=LLM_SYSTEM,
            messages=[{"role": "user", "content": LLM_USER}], output_config=output_config,
            extra_body={"temperature": LLM_TEMPERATURE},  # not a create() parameter in SDK 2.x
        )  # fmt: skip
        return "".join(block.text for block in message.content if block.type == "text")

    with closing(ours), closing(direct):
        yield (lambda: ours.generate(request).text), sdk


def _sent_schema(request: LlmRequest) -> dict[str, Any]:
    """The schema as the adapter puts it on the wire for ``request``'s provider (and endpoint)."""
    from worker_llm_client.adapters.sdk_edge import request_wire_schema

    sent = request_wire_schema(request).schema
    if sent is None:
        raise ValueError(f"the benchmark's schema would not go on the wire for provider '{request.provider}'")
    return dict(sent)


Pair = Callable[[str, dict[str, Any]], AbstractContextManager[tuple[Call, Call]]]
# provider -> (its stub's module, our adapter and the direct SDK call against that stub's root URL)
LLM_PAIRS: dict[str, tuple[str, Pair]] = {
    "gemini": ("devstack.gemini_stub", _gemini_pair),
    "openai": ("devstack.openai_stub", partial(_openai_pair, compatible=False)),
    "openai_compatible": ("devstack.openai_stub", partial(_openai_pair, compatible=True)),
    "anthropic": ("devstack.anthropic_stub", _anthropic_pair),
}


def llm_layer(rounds: int = 1000, providers: Sequence[str] = tuple(LLM_PAIRS)) -> dict[str, Any]:
    """Each adapter against a direct call of its SDK, same stub, same request; the top level is the
    provider furthest over its SDK at p95 (the one the goal is judged on), ``providers`` all."""
    import json

    schema = json.loads((ROOT / "schemas" / "weekly_report.json").read_text())
    figures = {}
    for provider in providers:
        module, pair = LLM_PAIRS[provider]
        with stub_process(module) as root, pair(root, schema) as (ours, direct):
            figures[provider] = _compare(ours, direct, rounds)
    worst = max(figures, key=lambda provider: figures[provider]["diffP95Ms"])
    return figures[worst] | {"provider": worst, "providers": figures}


def _compare(ours: Call, direct: Call, rounds: int) -> dict[str, Any]:
    """Interleaved rounds after a warm-up of both connection pools; the answers must match (the stub
    seeds its reply on the request: a different answer is a different request)."""
    same = ours() == direct()
    for _ in range(20):
        ours(), direct()
    mine, base = [], []
    for _ in range(rounds):
        mine += timed_us(ours, 1)
        base += timed_us(direct, 1)
    a, b = percentiles(mine), percentiles(base)
    return {
        "oursMs": rounded(a, 3, 1e-3),
        "directMs": rounded(b, 3, 1e-3),
        "diffP50Ms": round((a["p50"] - b["p50"]) / 1000, 3),
        "diffP95Ms": round((a["p95"] - b["p95"]) / 1000, 3),
        "ratioP50": round(a["p50"] / b["p50"], 3),
        "sameAnswer": same,
        "goal": "diff p95 < 2 ms",
    }
