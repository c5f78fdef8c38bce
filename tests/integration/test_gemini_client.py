"""Our Gemini adapter through the real google-genai SDK against the local stub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.builders import REPORT_SCHEMA
from worker_llm_client.adapters.gemini_client import GeminiClient
from worker_llm_client.config import Settings
from worker_llm_client.devstack.gemini_stub import Reply
from worker_llm_client.errors import LlmAuth, LlmBadRequest, LlmRateLimited, LlmTimeout, LlmUnavailable, StepError
from worker_llm_client.report_models import GenerationSettings, LlmRequest, SafetySetting, Turn

pytestmark = pytest.mark.integration


def _request(**changes: Any) -> LlmRequest:
    values: dict[str, Any] = {
        "provider": "gemini",
        "model": "gemini-2.5-flash",
        "system_instruction": "Be terse.",
        "contents": (Turn("user", "Write the report."),),
        "response_schema": REPORT_SCHEMA,
        "generation": GenerationSettings(
            temperature=0.3, top_p=0.9, top_k=20, max_output_tokens=512, seed=7, thinking_budget=0
        ),
        "safety_settings": (SafetySetting("HARM_CATEGORY_HARASSMENT", "BLOCK_ONLY_HIGH"),),
        "timeout_seconds": 5.0,
    }
    values.update(changes)
    return LlmRequest(**values)


@pytest.fixture
def client(stub: Any) -> Iterator[GeminiClient]:
    built = GeminiClient(Settings(project="it-project", gemini_api_key="stub-key", gemini_base_url=stub.base_url))
    yield built
    built.close()


def test_one_call_is_one_request_with_everything_on_the_wire(client: GeminiClient, stub: Any) -> None:
    result = client.generate(_request())
    [sent] = stub.requests
    assert sent.api_version == "v1beta" and sent.model == "gemini-2.5-flash"
    config = sent.body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == REPORT_SCHEMA and "responseSchema" not in config
    assert list(config["responseJsonSchema"]["properties"]) == ["title", "severity", "findings"]  # key order kept
    assert (config["temperature"], config["topP"], config["topK"], config["maxOutputTokens"], config["seed"]) == (
        0.3,
        0.9,
        20,
        512,
        7,
    )
    # google-genai 3.4 sends this nested key in snake_case; proto3 JSON parsing accepts both spellings
    assert config["thinkingConfig"] in ({"thinkingBudget": 0}, {"thinking_budget": 0})
    assert sent.body["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    assert sent.body["systemInstruction"]["parts"] == [{"text": "Be terse."}]
    assert sent.body["contents"] == [{"role": "user", "parts": [{"text": "Write the report."}]}]
    assert "tools" not in sent.body
    assert sent.headers["x-goog-api-key"] == "stub-key"
    assert sent.headers["x-server-timeout"] == "5"  # the profile's timeoutSeconds, also the client-side limit
    assert result.finish_reason == "STOP" and result.text and result.response_id and result.model_version == "stub-001"
    assert (
        result.usage.total_tokens
        == result.usage.prompt_tokens + result.usage.output_tokens + result.usage.thoughts_tokens
    )


def test_thought_parts_are_not_part_of_the_text(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.with_thoughts("SECRET THOUGHTS"))
    result = client.generate(_request())
    assert result.text is not None and "SECRET THOUGHTS" not in result.text


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.blocked("SAFETY"), {"block_reason": "SAFETY", "text": None}),
        (Reply.truncated(), {"finish_reason": "MAX_TOKENS"}),
        (Reply.finish("RECITATION"), {"finish_reason": "RECITATION", "text": None}),
        (Reply.empty(), {"finish_reason": "STOP", "text": None}),
    ],
)
def test_reply_shapes_surface_unclassified(
    client: GeminiClient, stub: Any, reply: Any, expected: dict[str, Any]
) -> None:
    stub.script(reply)
    result = client.generate(_request())
    assert {key: getattr(result, key) for key in expected} == expected


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (Reply.http_error(429, "quota", retry_delay="1.5s"), LlmRateLimited, "HTTP 429"),
        (Reply.http_error(503, "overloaded"), LlmUnavailable, "HTTP 503"),
        (Reply.http_error(500, "boom"), LlmUnavailable, "HTTP 500"),
        (
            Reply.http_error(400, "Invalid JSON payload: responseJsonSchema.foo"),
            LlmBadRequest,
            "responseJsonSchema.foo",
        ),
        (Reply.http_error(401, "bad key"), LlmAuth, "HTTP 401"),
        (Reply.http_error(403, "denied"), LlmAuth, "HTTP 403"),
        (Reply.http_error(404, "no such model"), LlmBadRequest, "model 'gemini-2.5-flash' was not found"),
        (Reply.delay(2.0), LlmTimeout, "timed out after 0.5s"),
    ],
)
def test_vendor_errors_are_translated(
    client: GeminiClient, stub: Any, reply: Any, error: type[StepError], message: str
) -> None:
    stub.script(reply)
    with pytest.raises(error, match=message):
        client.generate(_request(timeout_seconds=0.5))
    assert stub.calls() == 1  # the SDK did not retry on its own


def test_rate_limit_carries_the_servers_retry_hint(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.http_error(429, "quota", retry_delay="1.5s"))
    with pytest.raises(LlmRateLimited) as info:
        client.generate(_request())
    assert info.value.retry_after == 1.5 and info.value.retryable


def test_retry_after_header_is_the_fallback_hint(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.http_error(503, "busy", retry_after="7"))
    with pytest.raises(LlmUnavailable) as info:
        client.generate(_request())
    assert info.value.retry_after == 7.0


def test_missing_api_key_is_an_auth_error(stub: Any) -> None:
    with pytest.raises(LlmAuth, match="GEMINI_API_KEY"):
        GeminiClient(Settings(project="p", gemini_base_url=stub.base_url)).generate(_request())
    assert stub.calls() == 0


def test_vertex_provider_uses_the_vertex_path_and_bearer_credentials(stub: Any) -> None:
    from google.oauth2.credentials import Credentials

    settings = Settings(project="it-project", location="europe-west4", gemini_base_url=stub.base_url)
    client = GeminiClient(settings, vertex_credentials=Credentials(token="vertex-token"))  # type: ignore[no-untyped-call]
    result = client.generate(_request(provider="vertex"))
    client.close()
    [sent] = stub.requests
    assert (
        sent.path
        == "/v1/projects/it-project/locations/europe-west4/publishers/google/models/gemini-2.5-flash:generateContent"
    )
    assert sent.headers["authorization"] == "Bearer vertex-token"
    assert sent.body["generationConfig"]["responseJsonSchema"] == REPORT_SCHEMA
    assert result.finish_reason == "STOP"


def test_vertex_without_credentials_is_an_auth_error_not_a_crash(
    stub: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    settings = Settings(project="it-project", gemini_base_url=stub.base_url)
    with pytest.raises(LlmAuth, match="credentials"):
        GeminiClient(settings).generate(_request(provider="vertex"))
    assert stub.calls() == 0


def test_a_credentials_transport_blip_is_transient_not_an_auth_failure(stub: Any) -> None:
    from google.auth.exceptions import TransportError
    from google.oauth2.credentials import Credentials

    class MetadataServerDown(Credentials):
        def refresh(self, request: Any) -> None:
            raise TransportError("metadata server unreachable")

    settings = Settings(project="it-project", gemini_base_url=stub.base_url)
    client = GeminiClient(settings, vertex_credentials=MetadataServerDown(token=None))  # type: ignore[no-untyped-call]
    with pytest.raises(LlmUnavailable) as info:
        client.generate(_request(provider="vertex"))
    client.close()
    assert info.value.retryable and stub.calls() == 0
