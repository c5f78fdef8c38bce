"""Our OpenAI adapter through the real openai SDK against the local Chat Completions stub."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from devstack.openai_stub import OpenAiStub, Reply
from tests.builders import REPORT_SCHEMA, SAMPLING, make_request
from worker_llm_client.adapters.openai_client import OpenAiClient
from worker_llm_client.config import Settings
from worker_llm_client.core.bounds import MAX_ERROR_MESSAGE
from worker_llm_client.core.cost import request_cost
from worker_llm_client.errors import (
    Internal,
    LlmAuth,
    LlmBadRequest,
    LlmRateLimited,
    LlmTimeout,
    LlmUnavailable,
    StepError,
)
from worker_llm_client.execution_models import (
    Endpoint,
    LlmRequest,
    Pricing,
    Turn,
    Usage,
    WireSchema,
)

pytestmark = pytest.mark.integration

KEY = "sk-" + "test-openai-0123456789"
LOCAL_KEY = "lk-" + "test-local-0123456789"
MODEL_WORDS = "MODEL TEXT THAT MUST NOT BE LOGGED"
MODEL = "gpt-5-mini"
STRICT = WireSchema("openai_strict", REPORT_SCHEMA, strict=True)
JSON_INSTRUCTION = "Reply with one JSON object that satisfies this JSON Schema:\n" + json.dumps(REPORT_SCHEMA)


def _request(**changes: Any) -> LlmRequest:
    generation = replace(SAMPLING, thinking_budget=2048)
    return make_request(
        **({"provider": "openai", "model": MODEL, "generation": generation, "wire_schema": STRICT} | changes)
    )


def _compatible(base_url: str, structured: Any, dialect: Any, key_env: str | None = None, **changes: Any) -> LlmRequest:
    schema = None if dialect == "json_object" else REPORT_SCHEMA
    return _request(
        provider="openai_compatible",
        model="local-model",
        endpoint=Endpoint(base_url, structured, key_env),
        wire_schema=WireSchema(dialect, schema, strict=dialect == "openai_strict"),
        **changes,
    )


def _settings(stub: OpenAiStub, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "project": "it-project",
        "openai_api_key": KEY,
        "openai_base_url": stub.base_url,
        "endpoint_keys": {"LOCAL_API_KEY": LOCAL_KEY},
    }
    return Settings(**(values | changes))


@pytest.fixture
def client(openai_stub: OpenAiStub) -> Iterator[OpenAiClient]:
    built = OpenAiClient(_settings(openai_stub))
    yield built
    built.close()


def _report(result: Any) -> Any:
    report = json.loads(result.text)
    assert Draft202012Validator(REPORT_SCHEMA).is_valid(report), report
    return report


# ------------------------------------------------------------------ what goes on the wire, per dialect
def test_openai_strict_one_call_is_one_request_with_everything_on_the_wire(
    client: OpenAiClient, openai_stub: OpenAiStub
) -> None:
    result = client.generate(_request())
    [sent] = openai_stub.requests
    assert sent.path == "/v1/chat/completions" and sent.model == MODEL
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "report", "schema": REPORT_SCHEMA, "strict": True},
    }
    assert list(sent.body["response_format"]["json_schema"]["schema"]["properties"]) == [
        "title",
        "severity",
        "findings",
    ]
    assert sent.body["messages"] == [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Write the report."},
    ]
    assert (sent.body["temperature"], sent.body["top_p"], sent.body["seed"]) == (0.3, 0.9, 7)
    assert sent.body["max_completion_tokens"] == 512 and "max_tokens" not in sent.body
    # top_k, thinking and safety settings are not Chat Completions parameters for OpenAI
    absent = {"top_k", "thinking", "reasoning_effort", "safety_settings", "tools", "stream", "n"}
    assert not absent & set(sent.body)
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["x-stainless-retry-count"] == "0"
    assert sent.headers["x-stainless-read-timeout"] == "5.0"  # the profile's timeoutSeconds
    _report(result)
    assert result.finish_reason == "stop" and result.block_reason is None
    assert result.model_version == MODEL and result.response_id and result.response_id.startswith("chatcmpl-")
    usage = result.usage
    assert usage.prompt_tokens > 0 and usage.output_tokens > 0 and usage.thoughts_tokens == 0
    assert usage.total_tokens == usage.prompt_tokens + usage.output_tokens


def test_openai_non_strict_dialect_and_the_conversation_roles(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    turns = (Turn("user", "Write it."), Turn("model", "{}"), Turn("user", "Fix it."))
    client.generate(_request(wire_schema=WireSchema("openai", REPORT_SCHEMA), contents=turns, system_instruction=None))
    [sent] = openai_stub.requests
    assert sent.body["response_format"]["json_schema"]["strict"] is False
    assert sent.body["messages"] == [
        {"role": "user", "content": "Write it."},
        {"role": "assistant", "content": "{}"},
        {"role": "user", "content": "Fix it."},
    ]


def test_compatible_json_object_schema_goes_as_llama_cpp_takes_it(
    client: OpenAiClient, openai_stub: OpenAiStub
) -> None:
    result = client.generate(_compatible(openai_stub.url, "json_object_schema", "json_object_schema"))
    [sent] = openai_stub.requests
    assert sent.path == "/chat/completions"  # a base URL without /v1 is used as given
    assert sent.body["response_format"] == {"type": "json_object", "schema": REPORT_SCHEMA}
    assert sent.body["max_tokens"] == 512 and "max_completion_tokens" not in sent.body
    assert (sent.body["top_k"], sent.body["seed"]) == (20, 7)  # top_k in the body, as llama.cpp and vLLM read it
    # a grammar shapes the reply but the model never reads it: the schema is in the instructions too
    # (SmolLM2 on the real weekly_report schema: 5 of 12 replies valid without, 9 of 12 with)
    assert sent.body["messages"][0] == {"role": "system", "content": "Be terse.\n\n" + JSON_INSTRUCTION}
    assert sent.headers["authorization"] == "Bearer unused"  # no apiKeyEnv: a placeholder
    _report(result)
    assert result.model_version == "local-model"


@pytest.mark.parametrize(
    ("system", "expected"), [("Be terse.", "Be terse.\n\n" + JSON_INSTRUCTION), (None, JSON_INSTRUCTION)]
)
def test_compatible_json_mode_puts_the_schema_into_the_system_message(
    client: OpenAiClient, openai_stub: OpenAiStub, system: str | None, expected: str
) -> None:
    request = _compatible(openai_stub.base_url, "json_object", "json_object", system_instruction=system)
    result = client.generate(request)
    [sent] = openai_stub.requests
    assert sent.body["response_format"] == {"type": "json_object"}
    assert sent.body["messages"][0] == {"role": "system", "content": expected}
    assert "JSON" in sent.body["messages"][0]["content"]  # OpenAI's JSON mode refuses messages without it
    _report(result)  # the stub read the schema from the instructions


def test_compatible_json_schema_with_its_key_variable(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    request = _compatible(openai_stub.base_url, "json_schema", "openai_strict", key_env="LOCAL_API_KEY")
    client.generate(request)
    [sent] = openai_stub.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {LOCAL_KEY}"
    assert sent.body["response_format"]["json_schema"] == {"name": "report", "schema": REPORT_SCHEMA, "strict": True}


@pytest.mark.parametrize(
    ("provider", "structured", "response_format"),
    [
        (
            "openai",
            None,
            {"type": "json_schema", "json_schema": {"name": "report", "schema": REPORT_SCHEMA, "strict": True}},
        ),
        ("openai_compatible", "json_object", {"type": "json_object"}),
    ],
)
def test_without_a_wire_schema_the_adapter_compiles_the_prompt_schema(
    client: OpenAiClient, openai_stub: OpenAiStub, provider: Any, structured: Any, response_format: dict[str, Any]
) -> None:
    endpoint = None if structured is None else Endpoint(openai_stub.base_url, structured)
    _report(client.generate(_request(provider=provider, endpoint=endpoint, wire_schema=None)))
    [sent] = openai_stub.requests
    assert sent.body["response_format"] == response_format


def test_nothing_of_the_environment_reaches_the_endpoint(
    openai_stub: OpenAiStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The SDK reads these when not given them; Settings is the only configuration."""
    monkeypatch.setenv("OPENAI_ORG_ID", "org-from-env")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "from-env")
    client = OpenAiClient(_settings(openai_stub))
    client.generate(_request())
    client.generate(_compatible(openai_stub.base_url, "json_schema", "openai_strict"))
    client.close()
    for sent in openai_stub.requests:
        assert "openai-organization" not in sent.headers and "openai-project" not in sent.headers
    assert [r.headers["authorization"] for r in openai_stub.requests] == [f"Bearer {KEY}", "Bearer unused"]


# ------------------------------------------------------------------ reply shapes and usage
def test_usage_maps_reasoning_and_cached_tokens_without_double_counting(
    client: OpenAiClient, openai_stub: OpenAiStub
) -> None:
    openai_stub.script(Reply.usage(prompt=1000, completion=300, reasoning=120, cached=400))
    usage = client.generate(_request()).usage
    assert usage == Usage(
        prompt_tokens=1000, output_tokens=180, thoughts_tokens=120, cached_tokens=400, total_tokens=1300
    )
    pricing = Pricing(input_per_mtok=0.25, output_per_mtok=2.0, cached_input_per_mtok=0.025, as_of="2025-08-07")
    # 600 uncached input + 400 cached input + 300 completion tokens (reasoning included), each billed once
    assert request_cost(usage, pricing) == pytest.approx((600 * 0.25 + 400 * 0.025 + 300 * 2.0) / 1e6)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (None, Usage()),
        ("12 tokens", Usage()),
        (
            {"prompt_tokens": "12", "completion_tokens": -3, "total_tokens": True},
            Usage(),
        ),
        (
            {"prompt_tokens": 10, "completion_tokens": 5, "completion_tokens_details": {"reasoning_tokens": 2**60}},
            Usage(prompt_tokens=10, output_tokens=5, total_tokens=15),  # a count beyond int64 is no count
        ),
        (
            {
                "prompt_tokens": 10,
                "completion_tokens": 5,
                "prompt_tokens_details": {"cached_tokens": 50},
                "completion_tokens_details": {"reasoning_tokens": 9},
            },
            Usage(prompt_tokens=10, output_tokens=0, thoughts_tokens=5, cached_tokens=10, total_tokens=15),
        ),
        (
            {"prompt_tokens": 7, "completion_tokens": 3, "prompt_tokens_details": None},  # llama.cpp: no details
            Usage(prompt_tokens=7, output_tokens=3, total_tokens=10),
        ),
    ],
    ids=["absent", "string", "junk-counts", "huge-reasoning", "parts-above-their-whole", "no-details"],
)
def test_missing_or_odd_usage_is_bounded(
    client: OpenAiClient, openai_stub: OpenAiStub, usage: Any, expected: Usage
) -> None:
    openai_stub.script(Reply.ok().with_fields(usage=usage))
    result = client.generate(_request())
    assert result.usage == expected and result.text is not None


def test_a_refusal_is_blocked_and_its_text_is_not_the_answer(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    openai_stub.script(Reply.refusal(MODEL_WORDS))
    result = client.generate(_request())
    assert (result.block_reason, result.text, result.finish_reason) == ("refusal", None, "stop")
    assert MODEL_WORDS not in repr(result)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.truncated(), {"finish_reason": "length", "block_reason": None}),
        (Reply.content_filter(), {"finish_reason": "content_filter", "text": None, "block_reason": None}),
        (Reply.text("partial", "content_filter"), {"finish_reason": "content_filter", "text": "partial"}),
        (Reply.text(""), {"finish_reason": "stop", "text": ""}),
        (Reply.ok().with_fields(choices=[{"index": 0, "finish_reason": "stop"}]), {"text": None}),
        (
            Reply.ok().with_fields(
                choices=[
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1"}]},
                        "finish_reason": "tool_calls",
                    }
                ]
            ),
            {"finish_reason": "tool_calls", "text": None, "block_reason": None},
        ),
    ],
    ids=["length", "content-filter", "filtered-partial", "empty-text", "no-message", "tool-calls-only"],
)
def test_reply_shapes_surface_unclassified(
    client: OpenAiClient, openai_stub: OpenAiStub, reply: Reply, expected: dict[str, Any]
) -> None:
    openai_stub.script(reply)
    result = client.generate(_request())
    assert {key: getattr(result, key) for key in expected} == expected


def test_truncated_text_is_kept_as_sent(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    openai_stub.script(Reply.truncated())
    result = client.generate(_request())
    assert result.text and result.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.text)


def _choice(message: dict[str, Any]) -> Reply:
    return Reply.ok().with_fields(choices=[{"index": 0, "message": message, "finish_reason": "stop"}])


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ([{"type": "text", "text": '{"a":'}, {"type": "text", "text": " 1}"}], '{"a": 1}'),
        (
            [{"type": "thinking", "thinking": [{"type": "text", "text": MODEL_WORDS}]}, {"type": "text", "text": "{}"}],
            "{}",
        ),
        ([{"text": "{}"}, "loose string", {"type": "text", "text": 5}], "{}"),
        ([{"type": "reasoning", "text": MODEL_WORDS}], None),
        ([], None),
    ],
    ids=["text-parts", "thinking-part-skipped", "untyped-and-junk", "no-text-part", "empty-list"],
)
def test_content_as_a_list_of_parts_joins_the_text_parts(
    client: OpenAiClient, openai_stub: OpenAiStub, content: Any, text: str | None
) -> None:
    openai_stub.script(_choice({"role": "assistant", "content": content}))
    assert client.generate(_request()).text == text


def test_reasoning_content_is_not_the_answer(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    openai_stub.script(_choice({"role": "assistant", "content": "{}", "reasoning_content": MODEL_WORDS}))
    assert client.generate(_request()).text == "{}"


@pytest.mark.parametrize(
    "text", ["[" * 1000 + "]" * 1000, '{"n": ' + "9" * 5000 + "}", "not json at all"], ids=["deep", "digits", "prose"]
)
def test_hostile_text_reaches_our_validation_untouched(
    client: OpenAiClient, openai_stub: OpenAiStub, text: str
) -> None:
    openai_stub.script(Reply.text(text))
    result = client.generate(_request())
    assert result.text == text and result.finish_reason == "stop"


def test_provider_chosen_strings_are_clipped_and_odd_types_dropped(
    client: OpenAiClient, openai_stub: OpenAiStub
) -> None:
    long_choice = {"index": 0, "message": {"content": "{}"}, "finish_reason": "F" * 100_000}
    openai_stub.script(Reply.ok().with_fields(id="r" * 1_100_000, model="v" * 5000, choices=[long_choice]))
    result = client.generate(_request())
    assert (result.response_id, result.model_version) == ("r" * 255 + "…", "v" * 255 + "…")
    assert result.finish_reason == "F" * 255 + "…"
    odd_choice = {"index": 0, "message": {"content": "{}"}, "finish_reason": ["stop"]}
    openai_stub.script(Reply.ok().with_fields(id=42, model={"name": "x"}, choices=[odd_choice]))
    result = client.generate(_request())
    assert (result.response_id, result.model_version, result.finish_reason) == (None, None, None)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (400, LlmBadRequest, "HTTP 400 invalid_request_error: Invalid schema for response_format 'report'"),
        (404, LlmBadRequest, "model 'gpt-5-mini' or its endpoint was not found (Invalid schema"),
        (422, LlmBadRequest, "HTTP 422 invalid_request_error: Invalid schema"),
        (401, LlmAuth, "HTTP 401 invalid_request_error: the credentials were refused"),
        (403, LlmAuth, "HTTP 403 request_forbidden"),
        (408, LlmTimeout, "HTTP 408"),
        (504, LlmTimeout, "HTTP 504 server_error"),
        (409, LlmUnavailable, "HTTP 409"),
        (500, LlmUnavailable, "HTTP 500 server_error"),
        (503, LlmUnavailable, "HTTP 503"),
        (529, LlmUnavailable, "HTTP 529"),
        (429, LlmRateLimited, "HTTP 429 requests: model 'gpt-5-mini' is rate limited"),
    ],
)
def test_every_status_class_is_translated_after_exactly_one_request(
    client: OpenAiClient, openai_stub: OpenAiStub, status: int, error: type[StepError], message: str
) -> None:
    server_message = "Invalid schema for response_format 'report': 'required' must list every property."
    openai_stub.script(Reply.http_error(status, server_message))
    with pytest.raises(error) as info:
        client.generate(_request())
    assert message in info.value.message
    assert KEY not in info.value.message
    assert openai_stub.calls() == 1  # the SDK did not retry on its own (it would for 408/409/429/5xx)
    assert info.value.retryable == (status not in (400, 401, 403, 404, 422))


@pytest.mark.parametrize(
    ("reply", "hint"),
    [
        (Reply.http_error(429, retry_after_ms=1500), 1.5),
        (Reply.http_error(429, retry_after=7), 7.0),
        (Reply.http_error(429, retry_after="9", retry_after_ms="250"), 0.25),
        (Reply.http_error(429, reset_requests="1s", reset_tokens="6m0s"), 360.0),
        (Reply.http_error(429, reset_requests="20ms"), 0.02),
        (Reply.http_error(429, retry_after="soon"), None),
        (Reply.http_error(429, retry_after="1e400"), 3600.0),
        (Reply.http_error(429), None),
    ],
    ids=["retry-after-ms", "retry-after", "ms-wins", "reset-durations", "reset-ms", "junk", "huge", "none"],
)
def test_rate_limit_hints_from_the_headers(
    client: OpenAiClient, openai_stub: OpenAiStub, reply: Reply, hint: float | None
) -> None:
    openai_stub.script(reply)
    with pytest.raises(LlmRateLimited) as info:
        client.generate(_request())
    assert info.value.retry_after == hint and openai_stub.calls() == 1


def test_an_http_date_retry_after_is_the_seconds_until_then(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    from datetime import UTC, datetime, timedelta
    from email.utils import format_datetime

    when = datetime.now(UTC) + timedelta(seconds=120)
    openai_stub.script(Reply.http_error(429, retry_after=format_datetime(when, usegmt=True)))
    with pytest.raises(LlmRateLimited) as info:
        client.generate(_request())
    assert info.value.retry_after is not None and 100 < info.value.retry_after <= 120


def test_an_unavailable_reply_carries_its_hint_too(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    openai_stub.script(Reply.http_error(503, retry_after=3))
    with pytest.raises(LlmUnavailable) as info:
        client.generate(_request())
    assert info.value.retry_after == 3.0 and openai_stub.calls() == 1


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (
            Reply.raw(502, b"<html>bad gateway " + MODEL_WORDS.encode() + b"</html>", "text/html"),
            LlmUnavailable,
            "HTTP 502",
        ),
        (Reply.raw(400, b"<html>" + MODEL_WORDS.encode() + b"</html>", "text/html"), LlmBadRequest, "request rejected"),
        (Reply.raw(400, b'{"detail": "' + MODEL_WORDS.encode() + b'"}'), LlmBadRequest, "request rejected"),
        (Reply.raw(400, b'{"error": {"message": 7, "type": ["x"]}}'), LlmBadRequest, "HTTP 400: request rejected"),
    ],
    ids=["html-502", "html-400", "fastapi-detail", "odd-error-object"],
)
def test_error_bodies_that_are_not_openais_are_not_quoted(
    client: OpenAiClient, openai_stub: OpenAiStub, reply: Reply, error: type[StepError], message: str
) -> None:
    openai_stub.script(reply)
    with pytest.raises(error, match=message) as info:
        client.generate(_request())
    assert MODEL_WORDS not in info.value.message


def test_a_server_message_is_clipped_and_an_echoed_key_redacted(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    openai_stub.script(
        Reply.http_error(400, "m" * 100_000, error_type="T" * 5000),
        Reply.http_error(400, f"Incorrect header: Bearer {KEY} is not allowed", error_type=f"bad {KEY}"),
    )
    with pytest.raises(LlmBadRequest) as info:
        client.generate(_request())
    assert len(info.value.message) < MAX_ERROR_MESSAGE and "m" * 299 + "…" in info.value.message
    with pytest.raises(LlmBadRequest) as info:
        client.generate(_request())
    assert KEY not in info.value.message and "Bearer [redacted] is not allowed" in info.value.message


def test_a_slow_reply_is_a_timeout_after_one_request(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    openai_stub.script(Reply.delay(2.0))
    with pytest.raises(LlmTimeout, match=r"timed out after 0\.3s") as info:
        client.generate(_request(timeout_seconds=0.3))
    assert info.value.retryable and openai_stub.calls() == 1


@pytest.mark.parametrize(("seconds", "sent"), [(None, "600.0"), (float("inf"), "600.0"), (42, "42")])
def test_the_timeout_is_always_bounded(
    client: OpenAiClient, openai_stub: OpenAiStub, seconds: float | None, sent: str
) -> None:
    client.generate(_request(timeout_seconds=seconds))
    assert openai_stub.requests[0].headers["x-stainless-read-timeout"] == sent


def test_a_zero_budget_times_out_instead_of_waiting_forever(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    openai_stub.script(Reply.delay(1.0))
    with pytest.raises(LlmTimeout, match=r"timed out after 0\.001s"):
        client.generate(_request(timeout_seconds=0.0))


def test_a_refused_connection_is_unavailable(openai_stub: OpenAiStub) -> None:
    from devstack.services import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    client = OpenAiClient(_settings(openai_stub, openai_base_url=dead))
    with pytest.raises(LlmUnavailable, match="model endpoint unreachable: ConnectError") as info:
        client.generate(_request())
    client.close()
    assert info.value.retryable


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply.html_page(), "JSONDecodeError"),
        (Reply.raw(200, b"not json " + MODEL_WORDS.encode(), "text/plain"), "JSONDecodeError"),
        (Reply.raw(200, b'{"choices": "\x80\x81"}'), "UnicodeDecodeError"),
        (Reply.raw(200, b""), "JSONDecodeError"),
        (Reply.raw(200, b"[" * 100_000 + b"]" * 100_000), "RecursionError"),
        (Reply.raw(200, b"[]"), "a JSON array"),
        (Reply.raw(200, b"null"), "a JSON null"),
        (Reply.raw(200, b'"' + MODEL_WORDS.encode() + b'"'), "a JSON string"),
        (Reply.raw(200, b"{}"), "no choices"),
        (Reply.raw(200, b'{"error": {"message": "' + MODEL_WORDS.encode() + b'"}}'), "an error object and no choices"),
        (Reply.ok().with_fields(choices=[]), "no choices"),
        (Reply.ok().with_fields(choices={"0": {}}), "no choices"),
        (Reply.ok().with_fields(choices=[1]), "choices[0] is a JSON number"),
        (Reply.ok().with_fields(choices=[{"message": MODEL_WORDS}]), "choices[0].message is a JSON string"),
        (_choice({"content": 42}), "message.content is a JSON number"),
        (_choice({"content": {"text": MODEL_WORDS}}), "message.content is a JSON object"),
    ],
)
def test_a_200_that_is_not_a_chat_completion_is_unavailable(
    client: OpenAiClient, openai_stub: OpenAiStub, reply: Reply, reason: str
) -> None:
    openai_stub.script(reply)
    with pytest.raises(LlmUnavailable) as info:
        client.generate(_request())
    assert info.value.retryable and info.value.code == "LLM_UNAVAILABLE"
    assert info.value.message == (f"the model endpoint answered with a body that is not a ChatCompletion: {reason}")
    assert MODEL_WORDS not in info.value.message and openai_stub.calls() == 1


# ------------------------------------------------------------------ keys, providers, clients
def test_a_missing_openai_key_is_an_auth_error_before_any_request(openai_stub: OpenAiStub) -> None:
    with pytest.raises(LlmAuth, match="OPENAI_API_KEY is not set for provider 'openai'"):
        OpenAiClient(_settings(openai_stub, openai_api_key=None)).generate(_request())
    assert openai_stub.calls() == 0


def test_a_missing_endpoint_key_names_the_variable_never_a_value(client: OpenAiClient, openai_stub: OpenAiStub) -> None:
    request = _compatible(openai_stub.base_url, "json_schema", "openai_strict", key_env="ABSENT_API_KEY")
    with pytest.raises(LlmAuth) as info:
        client.generate(request)
    assert info.value.message == "ABSENT_API_KEY is not set for the endpoint of model 'local-model'"
    assert KEY not in info.value.message and LOCAL_KEY not in info.value.message
    assert openai_stub.calls() == 0


def test_refused_keys_never_appear_in_the_error() -> None:
    stub = OpenAiStub(api_key="sk-" + "the-right-one").start()
    try:
        client = OpenAiClient(_settings(stub))
        with pytest.raises(LlmAuth) as info:
            client.generate(_request())
        with pytest.raises(LlmAuth) as local:
            client.generate(_compatible(stub.base_url, "json_schema", "openai_strict", key_env="LOCAL_API_KEY"))
        client.close()
    finally:
        stub.stop()
    for error in (info.value, local.value):
        assert "HTTP 401" in error.message and KEY not in error.message and LOCAL_KEY not in error.message


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"provider": "gemini"}, "provider 'gemini' is not served by the OpenAI adapter"),
        ({"provider": "openai_compatible"}, "model 'gpt-5-mini' of provider 'openai_compatible' has no endpoint"),
        (
            {"provider": "openai_compatible", "endpoint": Endpoint("ftp://host/v1")},
            "the endpoint of model 'gpt-5-mini' is not an http(s) URL",
        ),
        (
            {"provider": "openai_compatible", "endpoint": Endpoint("localhost:8080")},
            "the endpoint of model 'gpt-5-mini' is not an http(s) URL",
        ),
        (
            {"provider": "openai_compatible", "endpoint": Endpoint("http://[::1/v1")},
            "the endpoint of model 'gpt-5-mini' is not an http(s) URL",
        ),
        (
            {"provider": "openai_compatible", "endpoint": Endpoint("http://host:port/v1")},
            "the endpoint of model 'gpt-5-mini' is not an http(s) URL",
        ),
        (
            {"wire_schema": WireSchema("gemini", REPORT_SCHEMA)},
            "schema dialect 'gemini' cannot be sent to provider 'openai'",
        ),
    ],
)
def test_requests_this_adapter_cannot_send_are_bad_requests(
    client: OpenAiClient, openai_stub: OpenAiStub, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(LlmBadRequest) as info:
        client.generate(_request(**changes))
    assert info.value.message == message and openai_stub.calls() == 0


def test_anything_unforeseen_is_internal_naming_its_type_only(openai_stub: OpenAiStub) -> None:
    class Broken(OpenAiClient):
        def _client(self, target: Any, key: str) -> Any:
            raise RuntimeError(f"something quoting {MODEL_WORDS} and {key}")

    with pytest.raises(Internal) as info:
        Broken(_settings(openai_stub)).generate(_request())
    assert info.value.message == "unexpected builtins.RuntimeError while calling model 'gpt-5-mini'"


def test_one_sdk_client_per_endpoint_shared_by_threads(openai_stub: OpenAiStub) -> None:
    client = OpenAiClient(_settings(openai_stub))
    assert not client._clients  # nothing is built before the first request
    requests = [_request(), _compatible(openai_stub.base_url, "json_schema", "openai_strict")] * 6
    errors: list[BaseException] = []

    def call(request: LlmRequest) -> None:
        try:
            client.generate(request)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(r,)) for r in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors and openai_stub.calls() == 12
    assert sorted(t.provider for t in client._clients) == ["openai", "openai_compatible"]
    client.close()
    assert not client._clients
