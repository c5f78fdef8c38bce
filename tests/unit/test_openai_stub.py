"""The OpenAI Chat Completions stub, driven through the real openai SDK and through raw HTTP: what
its module docstring says the SDK does against it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai
import pytest
from jsonschema import Draft202012Validator

from devstack.openai_stub import OpenAiStub, Reply, request_schema
from tests.stub_checks import check_cli_serves_until_sigterm, exchange, post_at_once

MODEL = "gpt-5-mini"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 12},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
    },
    "required": ["title", "score", "tags"],
    "additionalProperties": False,
}
STRICT_FORMAT = {"type": "json_schema", "json_schema": {"name": "report", "schema": SCHEMA, "strict": True}}
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture
def stub(openai_stub: OpenAiStub) -> OpenAiStub:
    return openai_stub


@pytest.fixture
def client(stub: OpenAiStub) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(api_key="k", base_url=stub.base_url, max_retries=0) as sdk_client:
        yield sdk_client


def _create(client: openai.OpenAI, model: str = MODEL, **kwargs: Any) -> Any:
    params: dict[str, Any] = {"model": model, "messages": HI, "response_format": STRICT_FORMAT, "timeout": 5}
    return client.chat.completions.create(**(params | kwargs))


def _valid(instance: Any, schema: dict[str, Any] = SCHEMA) -> bool:
    return bool(Draft202012Validator(schema).is_valid(instance))


# ------------------------------------------------------------------ answers through the SDK
def test_default_answer_is_schema_valid_deterministic_and_counted(client: openai.OpenAI, stub: OpenAiStub) -> None:
    first, second = _create(client), _create(client)
    other = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "other"}])
    [choice] = first.choices
    report = json.loads(choice.message.content or "")
    assert _valid(report) and set(report) == set(SCHEMA["properties"])
    assert second.choices[0].message.content == choice.message.content  # same request, same text
    assert json.loads(other.choices[0].message.content or "") == {"ok": True}  # no response_format
    assert (choice.finish_reason, choice.message.refusal, choice.message.role) == ("stop", None, "assistant")
    assert first.model == MODEL and first.id.startswith("chatcmpl-") and first.id != second.id
    assert first.object == "chat.completion" and first.system_fingerprint == "fp_stub"
    usage = first.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0 and usage.completion_tokens_details.reasoning_tokens == 0


INSTRUCTION = "Reply with one JSON object that satisfies this JSON Schema:\n" + json.dumps(SCHEMA)


@pytest.mark.parametrize(
    ("response_format", "system"),
    [
        ({"type": "json_object", "schema": SCHEMA}, None),
        ({"type": "json_object"}, "Be terse.\n\n" + INSTRUCTION),
        ({"type": "json_object"}, "JSON Schema: " + json.dumps(SCHEMA) + "\nNothing else."),
    ],
    ids=["llama-cpp-schema", "json-mode-instructions", "json-mode-trailing-text"],
)
def test_json_object_answers_follow_the_schema_wherever_it_is(
    client: openai.OpenAI, response_format: dict[str, Any], system: str | None
) -> None:
    messages = HI if system is None else [{"role": "system", "content": system}, *HI]
    response = _create(client, messages=messages, response_format=response_format)
    assert _valid(json.loads(response.choices[0].message.content))


def test_request_schema_lookup() -> None:
    assert request_schema({"response_format": STRICT_FORMAT}) == SCHEMA
    assert request_schema({"response_format": {"type": "json_schema", "json_schema": "x"}}) is None
    assert request_schema({"response_format": {"type": "json_object"}}) is None
    bad = [{"role": "system", "content": "JSON Schema: {not json"}, {"role": "user", "content": "JSON Schema: {}"}]
    assert request_schema({"messages": bad}) is None  # unparsable, and users' messages are not instructions
    assert request_schema({"messages": "x"}) is None


def test_scripted_shapes_through_the_sdk(client: openai.OpenAI, stub: OpenAiStub) -> None:
    stub.script(Reply.refusal("no."), Reply.truncated(), Reply.content_filter(), Reply.text("t", "tool_calls"))
    refusal, truncated, filtered, text = (_create(client).choices[0] for _ in range(4))
    assert (refusal.message.content, refusal.message.refusal, refusal.finish_reason) == (None, "no.", "stop")
    assert truncated.finish_reason == "length" and truncated.message.content
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.message.content)
    assert (filtered.message.content, filtered.finish_reason) == (None, "content_filter")
    assert (text.message.content, text.finish_reason) == ("t", "tool_calls")


def test_scripted_usage_counts_reasoning_inside_completion_and_cached_inside_prompt(
    client: openai.OpenAI, stub: OpenAiStub
) -> None:
    stub.script(Reply.usage(prompt=1000, completion=300, reasoning=120, cached=400), Reply.refusal().with_usage(5, 2))
    usage = _create(client).usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1000, 300, 1300)
    assert (usage.prompt_tokens_details.cached_tokens, usage.completion_tokens_details.reasoning_tokens) == (400, 120)
    assert _create(client).usage.total_tokens == 7


def test_with_fields_replaces_top_level_fields(client: openai.OpenAI, stub: OpenAiStub) -> None:
    stub.script(Reply.ok().with_fields(model="gpt-5-mini-2025-08-07").with_fields(usage=None, extra=[1]))
    response = _create(client)
    assert (response.model, response.usage) == ("gpt-5-mini-2025-08-07", None)
    assert response.choices[0].message.content  # the rest stays
    with pytest.raises(ValueError, match="raw"):
        Reply.html_page().with_fields(id="x")
    with pytest.raises(ValueError, match="delay"):
        Reply.delay(1).with_usage(1, 1)


def test_model_version_overrides_the_echoed_model() -> None:
    with OpenAiStub(model_version="gpt-x-2025") as stub, openai.OpenAI(api_key="k", base_url=stub.base_url) as client:
        assert _create(client).model == "gpt-x-2025"


# ------------------------------------------------------------------ requests as the SDK sends them
def test_the_sdk_request_as_recorded(client: openai.OpenAI, stub: OpenAiStub) -> None:
    _create(client, extra_body={"top_k": 3}, max_tokens=64, timeout=7.5)
    [sent] = stub.requests
    assert (sent.path, sent.model) == ("/v1/chat/completions", MODEL)
    assert sent.body == {
        "model": MODEL,
        "messages": HI,
        "response_format": STRICT_FORMAT,
        "max_tokens": 64,
        "top_k": 3,  # extra_body lands at the top level
    }
    assert sent.headers["authorization"] == "Bearer k"
    assert (sent.headers["x-stainless-retry-count"], sent.headers["x-stainless-read-timeout"]) == ("0", "7.5")


@pytest.mark.parametrize("suffix", ["", "/v1", "/openai/v1", "/api/deep/path"])
def test_any_base_url_path_reaches_chat_completions(stub: OpenAiStub, suffix: str) -> None:
    with openai.OpenAI(api_key="k", base_url=stub.url + suffix, max_retries=0) as client:
        assert _create(client).choices
    assert stub.requests[0].path == f"{suffix}/chat/completions"


def test_per_model_queues_take_precedence_over_the_global_queue(client: openai.OpenAI, stub: OpenAiStub) -> None:
    stub.script(Reply.text("x-1"), model="gpt-x")
    stub.script(Reply.text("global-1"), Reply.text("global-2"))
    assert _create(client).choices[0].message.content == "global-1"
    assert _create(client, "gpt-x").choices[0].message.content == "x-1"
    assert _create(client, "gpt-x").choices[0].message.content == "global-2"
    assert _valid(json.loads(_create(client).choices[0].message.content))
    assert (stub.calls(), stub.calls(MODEL), stub.calls("gpt-x")) == (4, 2, 2)
    assert stub.models() == ["gpt-5-mini", "gpt-x"]


# ------------------------------------------------------------------ errors through the SDK
@pytest.mark.parametrize(
    ("status", "error", "kind", "code"),
    [
        (400, openai.BadRequestError, "invalid_request_error", None),
        (401, openai.AuthenticationError, "invalid_request_error", "invalid_api_key"),
        (403, openai.PermissionDeniedError, "request_forbidden", None),
        (404, openai.NotFoundError, "invalid_request_error", "model_not_found"),
        (408, openai.APIStatusError, "invalid_request_error", None),
        (409, openai.ConflictError, "invalid_request_error", None),
        (422, openai.UnprocessableEntityError, "invalid_request_error", None),
        (429, openai.RateLimitError, "requests", "rate_limit_exceeded"),
        (500, openai.InternalServerError, "server_error", None),
        (503, openai.InternalServerError, "server_error", None),
        (529, openai.InternalServerError, "server_error", None),
    ],
)
def test_error_statuses_raise_the_sdks_classes_with_the_error_object(
    client: openai.OpenAI, stub: OpenAiStub, status: int, error: type[Exception], kind: str, code: str | None
) -> None:
    stub.script(Reply.http_error(status, "boom"))
    with pytest.raises(openai.APIStatusError) as caught:
        _create(client)
    err = caught.value
    assert type(err) is error and err.status_code == status
    assert err.body == {"message": "boom", "type": kind, "param": None, "code": code}
    assert (err.message, err.type, err.code) == (f"Error code: {status} - boom", kind, code)
    assert stub.calls() == 1


def test_retry_hint_headers_as_scripted(client: openai.OpenAI, stub: OpenAiStub) -> None:
    hints: dict[str, Any] = {"retry_after_ms": 1500, "retry_after": "2", "reset_requests": "1s", "reset_tokens": "6m0s"}
    stub.script(Reply.http_error(429, "quota", **hints, headers={"x-request-id": "req_1"}))
    with pytest.raises(openai.RateLimitError) as caught:
        _create(client)
    headers = caught.value.response.headers
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("1500", "2")
    assert (headers["x-ratelimit-reset-requests"], headers["x-ratelimit-reset-tokens"]) == ("1s", "6m0s")
    assert caught.value.request_id == "req_1"


def test_a_non_json_error_body_is_the_text(client: openai.OpenAI, stub: OpenAiStub) -> None:
    stub.script(Reply.raw(502, b"<html>bad gateway</html>", "text/html"))
    with pytest.raises(openai.InternalServerError) as caught:
        _create(client)
    assert (caught.value.body, caught.value.message) == ("<html>bad gateway</html>", "Error code: 502")


@pytest.mark.parametrize("status", [408, 409, 429, 503])
def test_the_sdk_retries_on_its_own_unless_told_not_to(stub: OpenAiStub, status: int) -> None:
    stub.script(*[Reply.http_error(status, retry_after_ms=1)] * 3)
    with openai.OpenAI(api_key="k", base_url=stub.base_url) as client, pytest.raises(openai.APIStatusError):
        _create(client)
    assert stub.calls() == 3  # max_retries defaults to 2
    stub.reset()
    stub.script(Reply.http_error(status, retry_after_ms=1))
    with (
        openai.OpenAI(api_key="k", base_url=stub.base_url, max_retries=0) as client,
        pytest.raises(openai.APIStatusError),
    ):
        _create(client)
    assert stub.calls() == 1


def test_a_slow_reply_and_a_dead_port(client: openai.OpenAI, stub: OpenAiStub) -> None:
    from devstack.services import free_port

    stub.script(Reply.delay(1.0))
    with pytest.raises(openai.APITimeoutError) as timeout:
        _create(client, timeout=0.2)
    assert type(timeout.value.__cause__) is httpx2.ReadTimeout
    dead = openai.OpenAI(api_key="k", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    with dead, pytest.raises(openai.APIConnectionError) as refused:
        _create(dead)
    assert type(refused.value.__cause__) is httpx2.ConnectError


def test_200s_are_not_validated(client: openai.OpenAI, stub: OpenAiStub) -> None:
    stub.script(Reply.html_page(), Reply.raw(200, b"[]"), Reply.raw(200, b"{}"), Reply.raw(200, b'{"choices": 5}'))
    assert _create(client).startswith("<!DOCTYPE html>")  # a str, not a ChatCompletion
    assert _create(client) == []
    empty = _create(client)
    assert isinstance(empty, openai.types.chat.ChatCompletion) and empty.choices is None
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HI)
    assert raw.http_response.content == b'{"choices": 5}'


def test_a_required_key_is_checked_and_the_refusal_recorded() -> None:
    right, wrong = "right-" + "key", "wrong-" + "key"
    with OpenAiStub(api_key=right) as stub:
        stub.script(Reply.text("kept"))
        with openai.OpenAI(api_key=wrong, base_url=stub.base_url, max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError) as caught:
                _create(client)
            assert caught.value.code == "invalid_api_key"
        with openai.OpenAI(api_key=right, base_url=stub.base_url, max_retries=0) as client:
            assert _create(client).choices[0].message.content == "kept"  # the script was untouched
        assert [r.headers["authorization"] for r in stub.requests] == [f"Bearer {wrong}", f"Bearer {right}"]


# ------------------------------------------------------------------ raw HTTP
def test_routes_and_malformed_requests_over_raw_http(stub: OpenAiStub) -> None:
    status, body, headers = exchange(stub, "POST", "/v1/completions", b'{"model": "m"}')
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": {
            "message": "Invalid URL (POST /v1/completions)",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert exchange(stub, "POST", "/v1/chat/completions", b"{nope")[0] == 400
    assert exchange(stub, "POST", "/v1/chat/completions", b"[1]")[0] == 400
    status, body, _ = exchange(stub, "POST", "/v1/chat/completions", b'{"messages": []}')
    assert status == 400 and json.loads(body)["error"]["message"] == "you must provide a model parameter"
    assert stub.calls() == 0
    assert exchange(stub, "POST", "/chat/completions", b'{"model": "m"}')[0] == 200
    assert exchange(stub, "GET", "/healthz")[:2] == (200, b"ok")
    for path in ("/v1/models", "/models"):
        status, body, _ = exchange(stub, "GET", path)
        assert status == 200 and [m["id"] for m in json.loads(body)["data"]] == ["m"]
    assert exchange(stub, "GET", "/v2/elsewhere")[0] == 404


def test_raw_replies_keep_body_content_type_and_headers(stub: OpenAiStub) -> None:
    stub.script(Reply.raw(200, b"[1, 2]", "text/plain", headers={"x-extra": "1"}))
    status, body, headers = exchange(stub, "POST", "/v1/chat/completions", b'{"model": "m"}')
    assert (status, body, headers["content-type"], headers["x-extra"]) == (200, b"[1, 2]", "text/plain", "1")


def test_concurrent_requests_latency_wait_and_reset(stub: OpenAiStub) -> None:
    stub.latency = 0.2
    assert post_at_once(stub, 30, "/v1/chat/completions", b'{"model": "m"}') == [200] * 30
    assert not stub.wait_for_calls(31, timeout=0.05)
    stub.script(Reply.text("queued"), model="m")
    stub.reset()
    assert (stub.latency, stub.calls(), stub.requests, stub.models()) == (0.0, 0, [], [])


def test_cli_serves_until_sigterm() -> None:
    check_cli_serves_until_sigterm("devstack.openai_stub", "openai-stub")


@pytest.mark.parametrize(
    ("api", "name"), [("openai", "openai-stub"), ("anthropic", "anthropic-stub"), ("gemini", "gemini-stub")]
)
def test_make_stub_serves_each_api(api: str, name: str) -> None:
    check_cli_serves_until_sigterm("devstack", name, "stub", "--api", api)
