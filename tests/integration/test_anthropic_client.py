"""Our Anthropic adapter through the real anthropic SDK (``Anthropic`` and ``AnthropicVertex``)
against the local stub."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.oauth2.credentials import Credentials
from jsonschema import Draft202012Validator

from devstack.anthropic_stub import AnthropicStub, Reply
from tests.builders import REPORT_SCHEMA, SAMPLING, make_request
from worker_llm_client.adapters.anthropic_client import (
    DEFAULT_MAX_TOKENS,
    AnthropicClient,
    vertex_url,
)
from worker_llm_client.adapters.sdk_edge import SCHEMA_INSTRUCTION, call_timeout
from worker_llm_client.config import Settings
from worker_llm_client.core.bounds import MAX_ERROR_MESSAGE
from worker_llm_client.errors import (
    Internal,
    LlmAuth,
    LlmBadRequest,
    LlmRateLimited,
    LlmTimeout,
    LlmUnavailable,
    StepError,
)
from worker_llm_client.execution_models import GenerationSettings, LlmRequest, Turn, WireSchema

pytestmark = pytest.mark.integration

MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-" + "stub-key"
API_VERSION = "2026-10-21"  # what anthropic 2.14 sends: anthropic-version header, Vertex anthropic_version
STRUCTURED = WireSchema(dialect="anthropic", schema=REPORT_SCHEMA)
JSON_MODE = WireSchema(dialect="json_object", schema=None)
MODEL_TEXT = "MODEL TEXT THAT MUST NOT BE LOGGED"
VERTEX_PATH = f"/v1/projects/it-project/locations/europe-west4/publishers/anthropic/models/{MODEL}:rawPredict"


def _request(**changes: Any) -> LlmRequest:
    values: dict[str, Any] = {
        "provider": "anthropic",
        "model": MODEL,
        "contents": (
            Turn("user", "Write the report."),
            Turn("model", '{"title": "x"}'),
            Turn("user", "severity is missing; fix it."),
        ),
        "generation": replace(SAMPLING, max_output_tokens=2048, thinking_budget=1024),
        "safety_settings": (),
        "wire_schema": STRUCTURED,
    }
    return make_request(**(values | changes))


@pytest.fixture
def client(anthropic_stub: AnthropicStub) -> Iterator[AnthropicClient]:
    built = AnthropicClient(
        Settings(project="it-project", anthropic_api_key=KEY, anthropic_base_url=anthropic_stub.base_url)
    )
    yield built
    built.close()


def _vertex(anthropic_stub: AnthropicStub, credentials: Any = None, **settings: Any) -> AnthropicClient:
    values = {
        "project": "it-project",
        "location": "europe-west4",
        "vertex_base_url": anthropic_stub.base_url,
    } | settings
    return AnthropicClient(Settings(**values), vertex_credentials=credentials)


# ------------------------------------------------------------------ the wire
def test_one_call_is_one_request_with_everything_on_the_wire(
    client: AnthropicClient, anthropic_stub: AnthropicStub
) -> None:
    result = client.generate(_request())
    [sent] = anthropic_stub.requests
    assert (sent.path, sent.platform, sent.model) == ("/v1/messages", "anthropic", MODEL)
    body = sent.body
    assert body["model"] == MODEL and body["system"] == "Be terse."
    assert body["messages"] == [
        {"role": "user", "content": "Write the report."},
        {"role": "assistant", "content": '{"title": "x"}'},
        {"role": "user", "content": "severity is missing; fix it."},
    ]
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["top_k"]) == (2048, 0.3, 0.9, 20)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": REPORT_SCHEMA}}
    assert list(body["output_config"]["format"]["schema"]["properties"]) == ["title", "severity", "findings"]
    assert "seed" not in body and "stream" not in body and "tools" not in body
    assert sent.headers["anthropic-version"] == API_VERSION
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # anthropic 2.x sends the key as a bearer token
    assert "x-api-key" not in sent.headers and "anthropic-beta" not in sent.headers  # structured outputs are GA
    assert sent.headers["x-stainless-timeout"] == "5.0" and sent.headers["x-stainless-retry-count"] == "0"
    assert result.finish_reason == "end_turn" and result.block_reason is None
    assert result.model_version == MODEL and result.response_id and result.response_id.startswith("msg_")
    assert result.text is not None and Draft202012Validator(REPORT_SCHEMA).is_valid(json.loads(result.text))
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.output_tokens > 0


def test_without_generation_settings_only_the_required_fields_go_out(
    client: AnthropicClient, anthropic_stub: AnthropicStub
) -> None:
    client.generate(_request(generation=GenerationSettings(), system_instruction=None, timeout_seconds=None))
    [sent] = anthropic_stub.requests
    assert sent.body["max_tokens"] == DEFAULT_MAX_TOKENS == 4096
    assert not {"system", "temperature", "top_p", "top_k", "thinking"} & set(sent.body)
    assert sent.headers["x-stainless-timeout"] == "600.0"  # bounded even without a profile timeout


@pytest.mark.parametrize(
    ("generation", "max_tokens", "thinking"),
    [
        (GenerationSettings(thinking_budget=1023), 4096, None),
        (GenerationSettings(thinking_budget=0), 4096, None),
        (GenerationSettings(thinking_budget=2048), 4096 + 2048, {"type": "enabled", "budget_tokens": 2048}),
        (
            GenerationSettings(thinking_budget=2048, max_output_tokens=3000),
            3000,
            {"type": "enabled", "budget_tokens": 2048},
        ),
        (GenerationSettings(max_output_tokens=100_000), 100_000, None),  # no "streaming is required" from the SDK
    ],
)
def test_thinking_budget_and_max_tokens(
    client: AnthropicClient,
    anthropic_stub: AnthropicStub,
    generation: GenerationSettings,
    max_tokens: int,
    thinking: Any,
) -> None:
    client.generate(_request(generation=generation))
    [sent] = anthropic_stub.requests
    assert sent.body["max_tokens"] == max_tokens and sent.body.get("thinking") == thinking


def test_json_mode_puts_the_schema_in_the_system_prompt(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    result = client.generate(_request(wire_schema=JSON_MODE))
    client.generate(_request(wire_schema=JSON_MODE, system_instruction=None))
    first, second = anthropic_stub.requests
    instruction = SCHEMA_INSTRUCTION + json.dumps(REPORT_SCHEMA)
    assert "output_config" not in first.body and first.body["system"] == f"Be terse.\n\n{instruction}"
    assert second.body["system"] == instruction
    assert result.text == '{"ok": true}'  # the stub's answer without a schema on the wire


def test_without_a_wire_schema_the_prompt_schema_is_compiled_for_anthropic(
    client: AnthropicClient, anthropic_stub: AnthropicStub
) -> None:
    from worker_llm_client.core.schema_dialects import wire_schema

    client.generate(_request(wire_schema=None))
    compiled = wire_schema(REPORT_SCHEMA, "anthropic")
    assert compiled.dialect == "anthropic" and compiled.schema is not None
    assert anthropic_stub.requests[0].body["output_config"] == {
        "format": {"type": "json_schema", "schema": compiled.schema}
    }


def test_usage_counts_cache_reads_and_writes_as_prompt(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    counts = {"input_tokens": 100, "cache_read_input_tokens": 40, "cache_creation_input_tokens": 10}
    anthropic_stub.script(Reply.usage(**counts, output_tokens=30), Reply.usage(input_tokens=7, output_tokens=3))
    usage = client.generate(_request()).usage
    assert usage.as_outputs() == {
        "promptTokens": 150,
        "outputTokens": 30,
        "thoughtsTokens": 0,
        "cachedTokens": 40,
        "totalTokens": 180,
    }
    assert client.generate(_request()).usage.as_outputs()["promptTokens"] == 7


@pytest.mark.parametrize(
    ("reply", "finish_reason", "text"),
    [
        (Reply.refusal(), "refusal", None),
        (Reply.refusal("I can't help with"), "refusal", "I can't help with"),
        (Reply.text("partial", "stop_sequence"), "stop_sequence", "partial"),
        (Reply.text("", "pause_turn"), "pause_turn", ""),
        (Reply.text("{}", "tool_use"), "tool_use", "{}"),
        (Reply.ok().with_fields(content=[]), "end_turn", None),
        (Reply.ok().with_fields(stop_reason=None), None, "any"),
    ],
)
def test_stop_reasons_surface_unclassified(
    client: AnthropicClient, anthropic_stub: AnthropicStub, reply: Reply, finish_reason: str | None, text: str | None
) -> None:
    anthropic_stub.script(reply)
    result = client.generate(_request())
    assert (result.finish_reason, result.block_reason) == (finish_reason, None)
    assert result.text == text or (text == "any" and result.text)


@pytest.mark.parametrize(
    ("reply", "finish_reason"),
    [(Reply.max_tokens(), "max_tokens"), (Reply.context_exceeded(), "model_context_window_exceeded")],
)
def test_cut_replies_keep_their_partial_text(
    client: AnthropicClient, anthropic_stub: AnthropicStub, reply: Reply, finish_reason: str
) -> None:
    full = client.generate(_request()).text
    anthropic_stub.script(reply)
    result = client.generate(_request())
    assert result.finish_reason == finish_reason
    assert full and result.text and full.startswith(result.text) and len(result.text) < len(full)


def test_thinking_blocks_are_not_part_of_the_text(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    plain = client.generate(_request()).text
    anthropic_stub.script(Reply.with_thinking("MODEL_TEXT THOUGHTS"))
    result = client.generate(_request())
    assert result.text == plain and "MODEL_TEXT THOUGHTS" not in (result.text or "")


def test_text_blocks_are_concatenated(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    blocks = [{"type": "text", "text": '{"a": '}, {"type": "tool_use", "id": "t", "name": "n", "input": {}}]
    anthropic_stub.script(Reply.ok().with_fields(content=[*blocks, {"type": "text", "text": "1}"}]))
    assert client.generate(_request()).text == '{"a": 1}'


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (400, LlmBadRequest, "HTTP 400 invalid_request_error: output_config.format.schema: unsupported keyword"),
        (404, LlmBadRequest, f"model '{MODEL}' or its endpoint was not found (output_config.format.schema"),
        (413, LlmBadRequest, "HTTP 413 request_too_large: output_config.format.schema"),
        (422, LlmBadRequest, "HTTP 422 invalid_request_error: output_config.format.schema"),
        (401, LlmAuth, "HTTP 401 authentication_error: the credentials were refused"),
        (403, LlmAuth, "HTTP 403 permission_error"),
        (408, LlmTimeout, "HTTP 408 invalid_request_error"),
        (504, LlmTimeout, "HTTP 504 timeout_error"),
        (409, LlmUnavailable, "HTTP 409 conflict_error"),
        (500, LlmUnavailable, "HTTP 500 api_error"),
        (503, LlmUnavailable, "HTTP 503 api_error"),
        (529, LlmUnavailable, "HTTP 529 overloaded_error"),
        (429, LlmRateLimited, "HTTP 429 rate_limit_error"),
    ],
)
def test_every_status_class_is_translated_once(
    client: AnthropicClient, anthropic_stub: AnthropicStub, status: int, error: type[StepError], message: str
) -> None:
    anthropic_stub.script(Reply.http_error(status, "output_config.format.schema: unsupported keyword"))
    with pytest.raises(error, match=re.escape(message)) as info:
        client.generate(_request())
    assert KEY not in info.value.message
    assert anthropic_stub.calls() == 1  # the SDK did not retry on its own


@pytest.mark.parametrize("reply", [Reply.overloaded(), Reply.http_error(429), Reply.http_error(500)])
def test_sdk_retries_are_off(client: AnthropicClient, anthropic_stub: AnthropicStub, reply: Reply) -> None:
    for _ in range(3):
        anthropic_stub.script(reply)
        with pytest.raises(StepError) as info:
            client.generate(_request())
        assert info.value.retryable
    assert anthropic_stub.calls() == 3  # one request per generate, never a retry by the SDK


@pytest.mark.parametrize(
    ("reply", "hint"),
    [
        (Reply.http_error(429, retry_after="7"), 7.0),
        (Reply.http_error(429, headers={"retry-after-ms": "1500"}), 1.5),
        (Reply.http_error(429, retry_after="nan"), None),
        (Reply.http_error(429), None),
        (Reply.http_error(529, retry_after="3"), 3.0),
    ],
)
def test_retry_after_is_the_hint(
    client: AnthropicClient, anthropic_stub: AnthropicStub, reply: Reply, hint: float | None
) -> None:
    anthropic_stub.script(reply)
    with pytest.raises((LlmRateLimited, LlmUnavailable)) as info:
        client.generate(_request())
    assert getattr(info.value, "retry_after", "missing") == hint


def test_rate_limit_reset_times_are_the_hint_without_retry_after(
    client: AnthropicClient, anthropic_stub: AnthropicStub
) -> None:
    reset = (datetime.now(UTC) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    anthropic_stub.script(Reply.http_error(429, reset=reset))
    with pytest.raises(LlmRateLimited) as info:
        client.generate(_request())
    assert info.value.retry_after is not None and 20 < info.value.retry_after <= 30


def test_a_non_json_error_body_is_still_translated(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    anthropic_stub.script(Reply.raw(400, b"<html>Bad Request</html>", "text/html"), Reply.raw(503, b""))
    with pytest.raises(LlmBadRequest, match=r"^HTTP 400: request rejected$"):
        client.generate(_request())
    with pytest.raises(LlmUnavailable, match="HTTP 503"):
        client.generate(_request())


def test_error_type_and_server_message_are_clipped(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    body = {"type": "error", "error": {"type": "t" * 5000, "message": "m" * 100_000}}
    anthropic_stub.script(Reply.raw(400, json.dumps(body).encode()))
    with pytest.raises(LlmBadRequest) as info:
        client.generate(_request())
    assert len(info.value.message) < MAX_ERROR_MESSAGE and "m" * 299 + "…" in info.value.message


def test_a_slow_reply_is_a_timeout(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    anthropic_stub.script(Reply.delay(2.0))
    with pytest.raises(LlmTimeout, match=r"timed out after 0\.5s"):
        client.generate(_request(timeout_seconds=0.5))


def test_a_refused_connection_is_unavailable() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    built = AnthropicClient(Settings(project="p", anthropic_api_key=KEY, anthropic_base_url=f"http://127.0.0.1:{port}"))
    with pytest.raises(LlmUnavailable, match="model endpoint unreachable: ConnectError") as info:
        built.generate(_request())
    assert info.value.retryable
    built.close()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply.html_page(), "JSONDecodeError"),
        (Reply.raw(200, b"\xff\xfe not json"), "UnicodeDecodeError"),
        (Reply.raw(200, b""), "JSONDecodeError"),
        (Reply.raw(200, b"[" * 100_000 + b"]" * 100_000), "RecursionError"),
        (Reply.raw(200, b'{"n": ' + b"9" * 5000 + b"}"), "ValueError"),
        (Reply.raw(200, b"[]"), "no content list"),
        (Reply.raw(200, b"{}"), "no content list"),
        (Reply.raw(200, b"null"), "no content list"),
        (Reply.raw(200, b'"' + MODEL_TEXT.encode() + b'"'), "no content list"),
        (Reply.raw(200, b'{"type": "message", "role": "assistant"}'), "no content list"),
        (Reply.ok().with_fields(content=MODEL_TEXT), "no content list"),
        (Reply.ok().with_fields(content=[MODEL_TEXT]), "a content block that is not an object"),
        (Reply.ok().with_fields(content=[{"type": "text", "text": [MODEL_TEXT]}]), "a text block whose text is not"),
        (Reply.ok().with_fields(content=[{"type": "text"}]), "a text block whose text is not a string"),
        (Reply.ok().with_fields(stop_reason=7), "a stop_reason that is not a string"),
    ],
)
def test_a_200_that_is_not_a_message_is_unavailable(
    client: AnthropicClient, anthropic_stub: AnthropicStub, reply: Reply, reason: str
) -> None:
    anthropic_stub.script(reply)
    with pytest.raises(LlmUnavailable) as info:
        client.generate(_request())
    assert info.value.retryable and info.value.code == "LLM_UNAVAILABLE"
    assert info.value.message.startswith("the model endpoint answered with a body that is not a Message: ")
    assert reason in info.value.message and MODEL_TEXT not in info.value.message
    assert anthropic_stub.calls() == 1


def test_odd_usage_and_provider_strings_are_bounded(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    usage = {"input_tokens": "12", "output_tokens": -1, "cache_read_input_tokens": 2**60}
    anthropic_stub.script(Reply.ok().with_fields(id="r" * 5000, model="v" * 5000, stop_reason="F" * 5000, usage=usage))
    result = client.generate(_request())
    assert (result.response_id, result.model_version, result.finish_reason) == (
        "r" * 255 + "…",
        "v" * 255 + "…",
        "F" * 255 + "…",
    )
    assert result.usage.as_outputs() == dict.fromkeys(result.usage.as_outputs(), 0)
    anthropic_stub.script(Reply.ok().with_fields(usage="none"), Reply.ok().with_fields(usage=None))
    assert client.generate(_request()).usage.total_tokens == client.generate(_request()).usage.total_tokens == 0


# ------------------------------------------------------------------ keys, providers, credentials
def test_missing_api_key_is_an_auth_error(anthropic_stub: AnthropicStub) -> None:
    with pytest.raises(LlmAuth, match="ANTHROPIC_API_KEY is not set"):
        AnthropicClient(Settings(project="p", anthropic_base_url=anthropic_stub.base_url)).generate(_request())
    assert anthropic_stub.calls() == 0


def test_a_refused_key_is_named_by_status_never_by_value(
    client: AnthropicClient, anthropic_stub: AnthropicStub
) -> None:
    anthropic_stub.script(Reply.http_error(401, f"invalid x-api-key {KEY}"))
    with pytest.raises(LlmAuth) as info:
        client.generate(_request())
    assert KEY not in info.value.message and KEY not in repr(info.value.args)


def test_an_unknown_provider_is_a_bad_request(client: AnthropicClient, anthropic_stub: AnthropicStub) -> None:
    with pytest.raises(LlmBadRequest, match="unknown provider 'gemini'"):
        client.generate(_request(provider="gemini"))
    assert anthropic_stub.calls() == 0


def test_vertex_uses_the_raw_predict_path_and_bearer_credentials(anthropic_stub: AnthropicStub) -> None:
    client = _vertex(anthropic_stub, Credentials(token="vertex-token"))  # type: ignore[no-untyped-call]
    result = client.generate(_request(provider="anthropic_vertex"))
    client.close()
    [sent] = anthropic_stub.requests
    assert (sent.path, sent.platform, sent.model) == (VERTEX_PATH, "vertex", MODEL)
    assert sent.headers["authorization"] == "Bearer vertex-token" and "x-api-key" not in sent.headers
    assert "model" not in sent.body and sent.body["anthropic_version"] == API_VERSION
    assert sent.body["output_config"] == {"format": {"type": "json_schema", "schema": REPORT_SCHEMA}}
    assert sent.body["messages"][1]["role"] == "assistant" and sent.body["system"] == "Be terse."
    assert result.finish_reason == "end_turn" and result.text


@pytest.mark.parametrize("root", ["{url}", "{url}/", "{url}/v1", "{url}/v1/"])
def test_the_vertex_base_url_is_the_endpoints_root(anthropic_stub: AnthropicStub, root: str) -> None:
    client = _vertex(anthropic_stub, Credentials(token="t"), vertex_base_url=root.format(url=anthropic_stub.base_url))  # type: ignore[no-untyped-call]
    client.generate(_request(provider="anthropic_vertex"))
    client.close()
    assert anthropic_stub.requests[0].path == VERTEX_PATH


def test_vertex_url_defaults_to_the_sdks_regional_endpoint() -> None:
    assert vertex_url(None) is None and vertex_url("") is None
    assert vertex_url("https://europe-west4-aiplatform.googleapis.com") == (
        "https://europe-west4-aiplatform.googleapis.com/v1"
    )


def test_vertex_errors_in_either_shape(anthropic_stub: AnthropicStub) -> None:
    google = {"error": {"code": 429, "message": "Quota exceeded for aiplatform", "status": "RESOURCE_EXHAUSTED"}}
    anthropic_stub.script(
        Reply.raw(429, json.dumps(google).encode()),
        Reply.http_error(400, "messages.0.content: empty"),
        Reply.overloaded(),
    )
    client = _vertex(anthropic_stub, Credentials(token="t"))  # type: ignore[no-untyped-call]
    with pytest.raises(LlmRateLimited, match="HTTP 429 RESOURCE_EXHAUSTED"):
        client.generate(_request(provider="anthropic_vertex"))
    with pytest.raises(LlmBadRequest, match=r"HTTP 400 invalid_request_error: messages\.0\.content: empty"):
        client.generate(_request(provider="anthropic_vertex"))
    with pytest.raises(LlmUnavailable, match="HTTP 529 overloaded_error"):
        client.generate(_request(provider="anthropic_vertex"))
    client.close()
    assert anthropic_stub.calls() == 3


def test_vertex_garbage_200s_are_unavailable(anthropic_stub: AnthropicStub) -> None:
    anthropic_stub.script(Reply.html_page(), Reply.raw(200, b"{}"))
    client = _vertex(anthropic_stub, Credentials(token="t"))  # type: ignore[no-untyped-call]
    for _ in range(2):
        with pytest.raises(LlmUnavailable, match="not a Message"):
            client.generate(_request(provider="anthropic_vertex"))
    client.close()


def test_vertex_without_credentials_is_an_auth_error(
    anthropic_stub: AnthropicStub, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(LlmAuth, match="no usable credentials for provider 'anthropic_vertex': DefaultCredentialsError"):
        _vertex(anthropic_stub).generate(_request(provider="anthropic_vertex"))
    assert anthropic_stub.calls() == 0


@pytest.mark.parametrize("failure", ["TransportError", "RefreshError"])
def test_a_credentials_blip_is_transient(anthropic_stub: AnthropicStub, failure: str) -> None:
    from google.auth import exceptions

    class Unreachable(Credentials):
        def refresh(self, request: Any) -> None:
            raise getattr(exceptions, failure)("metadata server unreachable")

    client = _vertex(anthropic_stub, Unreachable(token=None))  # type: ignore[no-untyped-call]
    with pytest.raises(LlmUnavailable, match=f"could not be refreshed: {failure}") as info:
        client.generate(_request(provider="anthropic_vertex"))
    client.close()
    assert info.value.retryable and anthropic_stub.calls() == 0


def test_anything_unforeseen_is_internal_naming_its_type_only(anthropic_stub: AnthropicStub) -> None:
    class Broken(AnthropicClient):
        def _build(self, provider: str) -> Any:
            raise RuntimeError(f"something quoting {MODEL_TEXT}")

    with pytest.raises(Internal) as info:
        Broken(Settings(project="p", anthropic_api_key=KEY)).generate(_request())
    assert info.value.message == f"unexpected builtins.RuntimeError while calling model '{MODEL}'"


def test_one_sdk_client_per_provider_shared_by_threads_and_rebuilt_after_close(anthropic_stub: AnthropicStub) -> None:
    client = AnthropicClient(Settings(project="p", anthropic_api_key=KEY, anthropic_base_url=anthropic_stub.base_url))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            client.generate(_request())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and anthropic_stub.calls() == 8 and len(client._clients) == 1
    client.close()
    assert len(client._clients) == 0
    client.generate(_request())
    assert anthropic_stub.calls() == 9
    client.close()


@pytest.mark.parametrize(
    ("seconds", "sent"), [(None, 600.0), (float("inf"), 600.0), (float("nan"), 600.0), (0.0, 0.001), (7.5, 7.5)]
)
def test_every_call_has_a_bounded_timeout(seconds: float | None, sent: float) -> None:
    assert call_timeout(seconds) == sent
