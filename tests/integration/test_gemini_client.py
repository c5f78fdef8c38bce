"""Our Gemini adapter through the real google-genai SDK against the local stub."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.gemini_stub import Reply
from tests.builders import REPORT_SCHEMA, make_request
from worker_llm_client.adapters.gemini_client import GeminiClient
from worker_llm_client.config import Settings
from worker_llm_client.errors import LlmAuth, LlmBadRequest, LlmRateLimited, LlmTimeout, LlmUnavailable, StepError

pytestmark = pytest.mark.integration


@pytest.fixture
def client(stub: Any) -> Iterator[GeminiClient]:
    built = GeminiClient(Settings(project="it-project", gemini_api_key="stub-key", gemini_base_url=stub.base_url))
    yield built
    built.close()


def test_one_call_is_one_request_with_everything_on_the_wire(client: GeminiClient, stub: Any) -> None:
    result = client.generate(make_request())
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
    result = client.generate(make_request())
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
    result = client.generate(make_request())
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
        (
            Reply.http_error(404, "no such model"),
            LlmBadRequest,
            "model 'gemini-2.5-flash' or its endpoint was not found",
        ),
        (Reply.delay(2.0), LlmTimeout, "timed out after 0.5s"),
    ],
)
def test_vendor_errors_are_translated(
    client: GeminiClient, stub: Any, reply: Any, error: type[StepError], message: str
) -> None:
    stub.script(reply)
    with pytest.raises(error, match=message):
        client.generate(make_request(timeout_seconds=0.5))
    assert stub.calls() == 1  # the SDK did not retry on its own


def test_rate_limit_carries_the_servers_retry_hint(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.http_error(429, "quota", retry_delay="1.5s"))
    with pytest.raises(LlmRateLimited) as info:
        client.generate(make_request())
    assert info.value.retry_after == 1.5 and info.value.retryable


def test_retry_after_header_is_the_fallback_hint(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.http_error(503, "busy", retry_after="7"))
    with pytest.raises(LlmUnavailable) as info:
        client.generate(make_request())
    assert info.value.retry_after == 7.0


def test_missing_api_key_is_an_auth_error(stub: Any) -> None:
    with pytest.raises(LlmAuth, match="GEMINI_API_KEY"):
        GeminiClient(Settings(project="p", gemini_base_url=stub.base_url)).generate(make_request())
    assert stub.calls() == 0


def test_vertex_provider_uses_the_vertex_path_and_bearer_credentials(stub: Any) -> None:
    from google.oauth2.credentials import Credentials

    settings = Settings(project="it-project", location="europe-west4", vertex_base_url=stub.base_url)
    client = GeminiClient(settings, vertex_credentials=Credentials(token="vertex-token"))  # type: ignore[no-untyped-call]
    result = client.generate(make_request(provider="vertex"))
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
    settings = Settings(project="it-project", vertex_base_url=stub.base_url)
    with pytest.raises(LlmAuth, match="credentials"):
        GeminiClient(settings).generate(make_request(provider="vertex"))
    assert stub.calls() == 0


@pytest.mark.parametrize(
    ("failure", "reason"),
    [("TransportError", "metadata server unreachable"), ("RefreshError", "token endpoint answered 503")],
)
def test_a_credentials_blip_is_transient_not_an_auth_failure(stub: Any, failure: str, reason: str) -> None:
    from google.auth import exceptions
    from google.oauth2.credentials import Credentials

    class Unreachable(Credentials):
        def refresh(self, request: Any) -> None:
            raise getattr(exceptions, failure)(reason)

    settings = Settings(project="it-project", vertex_base_url=stub.base_url)
    client = GeminiClient(settings, vertex_credentials=Unreachable(token=None))  # type: ignore[no-untyped-call]
    with pytest.raises(LlmUnavailable, match=failure) as info:
        client.generate(make_request(provider="vertex"))
    client.close()
    assert info.value.retryable and stub.calls() == 0


# ------------------------------------------------------------------ garbage 200s, bounds, credentials
SECRET = "MODEL TEXT THAT MUST NOT BE LOGGED"
_CANDIDATE = {"content": {"role": "model", "parts": [{"text": "{}"}]}, "finishReason": "STOP"}


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply.html_page(), "JSONDecodeError"),
        (Reply.raw(200, b"\xff\xfe not json"), "JSONDecodeError"),
        (Reply.raw(200, b"123"), "TypeError"),
        (Reply.raw(200, b'{"candidates": [1]}'), "TypeError"),
        (Reply.text_part([SECRET, "second"]), "ValidationError"),
        (Reply.text_part(42), "ValidationError"),
        (Reply.text_part({"secret": SECRET}), "ValidationError"),
        (Reply.ok().with_fields(usageMetadata={"promptTokenCount": SECRET}), "ValidationError"),
        (Reply.ok().with_fields(candidates=[_CANDIDATE | {"finishReason": 7}]), "AttributeError"),
        (Reply.raw(200, b"[1, 2]"), "no candidates"),
        (Reply.raw(200, b'"just a string"'), "no candidates"),
        (Reply.raw(200, b"null"), "no candidates"),
        (Reply.raw(200, b""), "no candidates"),
        (Reply.raw(200, b'{"unrelated": true}'), "no candidates"),
    ],
)
def test_a_200_that_is_not_a_generate_content_response_is_unavailable(
    client: GeminiClient, stub: Any, reply: Any, reason: str
) -> None:
    stub.script(reply)
    with pytest.raises(LlmUnavailable) as info:
        client.generate(make_request())
    assert info.value.retryable and info.value.code == "LLM_UNAVAILABLE"
    assert info.value.message.startswith(
        "the model endpoint answered with a body that is not a GenerateContentResponse: "
    )
    assert reason in info.value.message and SECRET not in info.value.message and "input_value" not in info.value.message
    assert stub.calls() == 1


def test_garbage_200s_are_unavailable_on_vertex_too(stub: Any) -> None:
    from google.oauth2.credentials import Credentials

    settings = Settings(project="it-project", vertex_base_url=stub.base_url)
    client = GeminiClient(settings, vertex_credentials=Credentials(token="t"))  # type: ignore[no-untyped-call]
    stub.script(Reply.text_part([SECRET]), Reply.raw(200, b'{"candidates": "x"}'))
    for _ in range(2):
        with pytest.raises(LlmUnavailable, match="not a GenerateContentResponse") as info:
            client.generate(make_request(provider="vertex"))
        assert SECRET not in info.value.message
    client.close()


@pytest.mark.parametrize(
    ("reply", "hint"),
    [
        (Reply.http_error(429, "quota", retry_delay="999999999999s"), 3600.0),
        (Reply.http_error(429, "quota", retry_delay="9" * 400 + "s"), 3600.0),
        (Reply.http_error(429, "quota", retry_after="inf"), 3600.0),
        (Reply.http_error(429, "quota", retry_after="1e400"), 3600.0),
        (Reply.http_error(429, "quota", retry_after="nan"), None),
        (Reply.http_error(429, "quota", retry_after="-5"), 0.0),
        (Reply.http_error(429, "quota", retry_after="soon"), None),
        (Reply.http_error(429, "quota", headers={"retry-after-ms": "1500"}), 1.5),
        (Reply.http_error(429, "quota", retry_after="9", headers={"retry-after-ms": "250"}), 0.25),
        (Reply.http_error(429, "quota", retry_delay="2s", retry_after="9"), 2.0),
        (Reply.raw(429, b'{"error": {"code": 429, "details": 5}}'), None),
        (Reply.raw(429, b'{"error": {"code": 429, "details": [{"@type": 7}, "x"]}}'), None),
    ],
)
def test_retry_hints_are_clamped_and_junk_is_no_hint(
    client: GeminiClient, stub: Any, reply: Any, hint: float | None
) -> None:
    stub.script(reply)
    with pytest.raises(LlmRateLimited) as info:
        client.generate(make_request())
    assert info.value.retry_after == hint


def test_an_http_date_retry_after_is_the_seconds_until_then(client: GeminiClient, stub: Any) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = datetime.now(UTC) + timedelta(seconds=120)
    stub.script(Reply.http_error(503, "busy", retry_after=format_datetime(when, usegmt=True)))
    with pytest.raises(LlmUnavailable) as info:
        client.generate(make_request())
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 120


def test_error_status_and_server_message_are_clipped(client: GeminiClient, stub: Any) -> None:
    from worker_llm_client.core.bounds import MAX_ERROR_MESSAGE

    body = b'{"error": {"code": 400, "status": "' + b"S" * 5000 + b'", "message": "' + b"m" * 100_000 + b'"}}'
    stub.script(Reply.raw(400, body))
    with pytest.raises(LlmBadRequest) as info:
        client.generate(make_request())
    assert len(info.value.message) < MAX_ERROR_MESSAGE and "m" * 299 + "…" in info.value.message


def test_provider_chosen_strings_are_clipped(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.ok().with_fields(responseId="r" * 1_100_000, modelVersion="v" * 5000))
    result = client.generate(make_request())
    assert result.response_id == "r" * 255 + "…" and result.model_version == "v" * 255 + "…"
    assert result.text is not None


@pytest.mark.filterwarnings("ignore::UserWarning")  # the SDK warns about a reason it does not know
def test_unknown_finish_and_block_reasons_are_clipped(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.finish("F" * 100_000), Reply.blocked("B" * 100_000))
    assert client.generate(make_request()).finish_reason == "F" * 255 + "…"
    assert client.generate(make_request()).block_reason == "B" * 255 + "…"


@pytest.mark.parametrize(
    ("seconds", "millis"), [(0.0004, 1), (0.0015, 2), (0.5, 500), (5.0, 5000), (0.0, 1), (None, None)]
)
def test_a_timeout_under_a_millisecond_is_still_a_timeout(seconds: float | None, millis: int | None) -> None:
    from worker_llm_client.adapters.gemini_client import build_config

    options = build_config(make_request(timeout_seconds=seconds)).http_options
    assert (options.timeout if options else None) == millis


def test_a_sub_millisecond_budget_times_out_instead_of_waiting_forever(client: GeminiClient, stub: Any) -> None:
    stub.script(Reply.delay(1.0))
    with pytest.raises(LlmTimeout):
        client.generate(make_request(timeout_seconds=0.0004))


def test_a_refresh_failure_while_building_the_client_is_transient(stub: Any) -> None:
    from google.auth.exceptions import DefaultCredentialsError, RefreshError

    class Blip(GeminiClient):
        error: Exception = RefreshError("metadata server answered 500")

        def _build(self, provider: str) -> Any:
            raise self.error

    client = Blip(Settings(project="it-project", vertex_base_url=stub.base_url))
    with pytest.raises(LlmUnavailable, match="could not be refreshed"):
        client.generate(make_request(provider="vertex"))
    client.error = DefaultCredentialsError("no credentials at all")
    with pytest.raises(LlmAuth, match="DefaultCredentialsError"):
        client.generate(make_request(provider="vertex"))


def test_anything_unforeseen_is_internal_naming_its_type_only(stub: Any) -> None:
    from worker_llm_client.errors import Internal

    class Broken(GeminiClient):
        def _build(self, provider: str) -> Any:
            raise RuntimeError(f"something quoting {SECRET}")

    with pytest.raises(Internal) as info:
        Broken(Settings(project="it-project", gemini_base_url=stub.base_url)).generate(make_request())
    assert info.value.message == "unexpected builtins.RuntimeError while calling model 'gemini-2.5-flash'"


@pytest.mark.parametrize(
    "text", ["[" * 1000 + "]" * 1000, '{"n": ' + "9" * 5000 + "}", "not json at all"], ids=["deep", "digits", "prose"]
)
def test_the_sdk_never_parses_the_reply_so_hostile_text_reaches_our_validation(
    client: GeminiClient, stub: Any, text: str
) -> None:
    """With ``response_json_schema`` in the config the SDK would ``json.loads`` the text itself and
    raise RecursionError/ValueError out of the call, losing the reply (and its repair)."""
    stub.script(Reply.text(text))
    result = client.generate(make_request())
    assert result.text == text and result.finish_reason == "STOP"
    assert stub.requests[-1].body["generationConfig"]["responseJsonSchema"] == REPORT_SCHEMA


def test_provider_gemini_stays_on_the_gemini_api_whatever_the_environment_says(
    stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """google-genai reads GOOGLE_GENAI_USE_VERTEXAI when ``vertexai`` is not given: set in the
    function's environment (the local demo uses it to pick its backend), it silently sent
    ``provider: gemini`` profiles to Vertex AI. The profile's provider decides, nothing else."""
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "it-project")
    monkeypatch.setenv("GOOGLE_CLOUD_LOCATION", "europe-west4")
    client = GeminiClient(Settings(project="it-project", gemini_api_key="stub-key", gemini_base_url=stub.base_url))
    client.generate(make_request())
    client.close()
    [sent] = stub.requests
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "stub-key"
