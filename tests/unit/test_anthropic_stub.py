"""The Anthropic stub, driven through the real anthropic SDK and through raw HTTP: what its
docstring says anthropic 2.14 does against it is asserted here."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from google.oauth2.credentials import Credentials
from jsonschema import Draft202012Validator

from devstack.anthropic_stub import AnthropicStub, Reply
from tests.stub_checks import check_cli_serves_until_sigterm, exchange, post_at_once

MODEL = "claude-sonnet-4-6"
KEY = "sk-ant-" + "unit"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 12},
        "severity": {"enum": ["low", "medium", "high"]},
        "findings": {"type": "array", "items": {"type": "string"}, "minItems": 2},
    },
    "required": ["title", "severity", "findings"],
    "additionalProperties": False,
}
FORMAT = {"format": {"type": "json_schema", "schema": SCHEMA}}
HEADERS = {"content-type": "application/json", "x-api-key": KEY, "anthropic-version": "2026-10-21"}
BODY: dict[str, Any] = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
VERTEX_PATH = f"/v1/projects/p/locations/r/publishers/anthropic/models/{MODEL}:rawPredict"


@pytest.fixture
def stub(anthropic_stub: AnthropicStub) -> AnthropicStub:
    return anthropic_stub


@pytest.fixture
def client(stub: AnthropicStub) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key=KEY, base_url=stub.base_url, max_retries=0, open_telemetry=False) as sdk:
        yield sdk


def _create(client: Any, **params: Any) -> Any:
    values = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]} | params
    return client.messages.create(**values)


def _post(stub: AnthropicStub, path: str, body: Any = BODY, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, data, _ = exchange(stub, "POST", path, payload, HEADERS if headers is None else headers)
    return status, json.loads(data) if data.startswith((b"{", b"[")) else data


# ------------------------------------------------------------------ what the SDK sends and gets
def test_default_reply_is_schema_valid_deterministic_and_has_usage(stub: AnthropicStub, client: Any) -> None:
    first = _create(client, output_config=FORMAT)
    again = _create(client, output_config=FORMAT)
    other = _create(client, output_config=FORMAT, messages=[{"role": "user", "content": "another"}])
    assert Draft202012Validator(SCHEMA).is_valid(json.loads(first.content[0].text))
    assert first.content[0].text == again.content[0].text != other.content[0].text
    assert (first.type, first.role, first.model, first.stop_reason) == ("message", "assistant", MODEL, "end_turn")
    assert first.id.startswith("msg_") and first.id != again.id
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert (first.usage.cache_read_input_tokens, first.usage.cache_creation_input_tokens) == (0, 0)
    assert _create(client).content[0].text == '{"ok": true}'  # no schema on the wire


def test_the_sdk_sends_a_bearer_key_the_api_version_and_output_config(stub: AnthropicStub, client: Any) -> None:
    _create(client, output_config=FORMAT, system="sys")
    [sent] = stub.requests
    assert (sent.path, sent.platform, sent.model) == ("/v1/messages", "anthropic", MODEL)
    assert sent.headers["authorization"] == f"Bearer {KEY}" and "x-api-key" not in sent.headers
    assert sent.headers["anthropic-version"] == "2026-10-21" and "anthropic-beta" not in sent.headers
    assert sent.body["output_config"] == FORMAT and sent.body["system"] == "sys"


def test_anthropic_vertex_posts_raw_predict_without_model(stub: AnthropicStub) -> None:
    vertex = anthropic.AnthropicVertex(
        region="r",
        project_id="p",
        credentials=Credentials(token="vertex-token"),  # type: ignore[no-untyped-call]
        base_url=stub.vertex_base_url,
        max_retries=0,
        open_telemetry=False,
    )
    message = _create(vertex, output_config=FORMAT)
    vertex.close()
    [sent] = stub.requests
    assert (sent.path, sent.platform, sent.model) == (VERTEX_PATH, "vertex", MODEL)
    assert sent.headers["authorization"] == "Bearer vertex-token"
    assert "model" not in sent.body and sent.body["anthropic_version"] == "2026-10-21"
    assert message.model == MODEL and Draft202012Validator(SCHEMA).is_valid(json.loads(message.content[0].text))
    default = anthropic.AnthropicVertex(region="europe-west4", project_id="p", access_token="t")
    assert str(default.base_url) == "https://europe-west4-aiplatform.googleapis.com/v1/"
    default.close()


def test_error_replies_become_typed_status_errors(stub: AnthropicStub, client: Any) -> None:
    stub.script(
        Reply.http_error(429, "slow down", retry_after="7", reset="2030-01-01T00:00:00Z"),
        Reply.overloaded(),
        Reply.raw(502, b"<html>bad gateway</html>", "text/html"),
    )
    with pytest.raises(anthropic.RateLimitError) as limited:
        _create(client)
    err = limited.value
    assert (err.status_code, err.type, err.api_message) == (429, "rate_limit_error", "slow down")
    assert err.body == {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}} | {
        "request_id": err.body["request_id"]  # type: ignore[index]
    }
    headers = err.response.headers
    assert headers["retry-after"] == "7" and headers["request-id"].startswith("req_")
    assert headers["anthropic-ratelimit-requests-reset"] == headers["anthropic-ratelimit-tokens-reset"]
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        _create(client)
    assert (overloaded.value.status_code, overloaded.value.type) == (529, "overloaded_error")
    with pytest.raises(anthropic.InternalServerError) as gateway:
        _create(client)
    assert gateway.value.body == "<html>bad gateway</html>" and gateway.value.type is None


def test_the_sdk_retries_by_default_and_not_with_max_retries_zero(stub: AnthropicStub, client: Any) -> None:
    fast = {"retry-after-ms": "1"}
    stub.script(*[Reply.http_error(529, headers=fast)] * 2, Reply.ok())
    with anthropic.Anthropic(api_key=KEY, base_url=stub.base_url, open_telemetry=False) as retrying:
        assert _create(retrying).stop_reason == "end_turn"
    assert stub.calls() == 3
    stub.script(Reply.http_error(529, headers=fast), Reply.ok())
    with pytest.raises(anthropic.OverloadedError):
        _create(client)
    assert stub.calls() == 4


def test_timeouts_and_refused_connections(stub: AnthropicStub, client: Any) -> None:
    stub.script(Reply.delay(2.0))
    with pytest.raises(anthropic.APITimeoutError):
        _create(client.with_options(timeout=0.3))
    refused = anthropic.Anthropic(api_key=KEY, base_url="http://127.0.0.1:9", max_retries=0, open_telemetry=False)
    with pytest.raises(anthropic.APIConnectionError) as info:
        _create(refused)
    assert not isinstance(info.value, anthropic.APITimeoutError)
    refused.close()


def test_the_sdk_does_not_validate_a_200(stub: AnthropicStub, client: Any) -> None:
    stub.script(Reply.raw(200, b"{}"), Reply.raw(200, b"[]"), Reply.html_page())
    empty = _create(client)
    assert isinstance(empty, anthropic.types.Message) and empty.content is None
    assert _create(client) == []
    assert str(_create(client)).startswith("<!DOCTYPE html>")


# ------------------------------------------------------------------ scripted replies
def test_refusal_cut_and_thinking_replies(stub: AnthropicStub, client: Any) -> None:
    full = _create(client, output_config=FORMAT).content[0].text
    stub.script(Reply.refusal(), Reply.max_tokens(), Reply.context_exceeded(), Reply.with_thinking("pondering"))
    refusal = _create(client, output_config=FORMAT)
    assert (refusal.stop_reason, refusal.content, refusal.stop_details.type) == ("refusal", [], "refusal")
    for reason in ("max_tokens", "model_context_window_exceeded"):
        cut = _create(client, output_config=FORMAT)
        assert cut.stop_reason == reason and cut.content[0].text == full[: len(full) // 2]
    thinking = _create(client, output_config=FORMAT)
    assert [block.type for block in thinking.content] == ["thinking", "redacted_thinking", "text"]
    assert thinking.content[0].thinking == "pondering" and thinking.content[2].text == full


def test_text_usage_and_with_fields(stub: AnthropicStub, client: Any) -> None:
    stub.script(
        Reply.text("hello", "stop_sequence"),
        Reply.usage(input_tokens=100, cache_read_input_tokens=40),
        Reply.refusal("no").with_fields(id="msg_fixed", model="claude-other"),
    )
    text = _create(client)
    assert (text.content[0].text, text.stop_reason) == ("hello", "stop_sequence")
    usage = _create(client).usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (100, 40, 0)
    fields = _create(client)
    assert (fields.id, fields.model, fields.content[0].text) == ("msg_fixed", "claude-other", "no")
    with pytest.raises(ValueError, match="not to a raw reply"):
        Reply.overloaded().with_fields(id="x")


def test_per_model_queues_take_precedence_over_the_global_queue(stub: AnthropicStub, client: Any) -> None:
    stub.script(Reply.text("global"))
    stub.script(Reply.text("opus"), model="claude-opus-4-7")
    assert _create(client, model="claude-opus-4-7").content[0].text == "opus"
    assert _create(client, model="claude-opus-4-7").content[0].text == "global"
    assert _create(client).content[0].text == '{"ok": true}'
    assert (stub.calls(), stub.calls("claude-opus-4-7"), stub.calls(MODEL)) == (3, 2, 1)


# ------------------------------------------------------------------ raw HTTP
@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        ("/v1/complete", BODY, HEADERS, 404, "Not found: POST /v1/complete"),
        ("/v1/messages", BODY, {"anthropic-version": "2026-10-21"}, 401, "x-api-key header is required"),
        ("/v1/messages", BODY, {"x-api-key": KEY}, 400, "anthropic-version: header is required"),
        ("/v1/messages", b"{not json", HEADERS, 400, "not valid JSON"),
        ("/v1/messages", b"[1]", HEADERS, 400, "not valid JSON"),
        ("/v1/messages", {"model": MODEL, "messages": []}, HEADERS, 400, "max_tokens: Field required"),
        ("/v1/messages", {"max_tokens": 1, "messages": []}, HEADERS, 400, "model: Field required"),
        ("/v1/messages", BODY | {"stream": True}, HEADERS, 400, "this stub does not stream"),
        (VERTEX_PATH, BODY | {"anthropic_version": "x"}, HEADERS, 400, "model: Extra inputs are not permitted"),
        (VERTEX_PATH, {"max_tokens": 1, "messages": []}, HEADERS, 400, "anthropic_version: Field required"),
    ],
)
def test_malformed_requests_are_anthropic_errors_and_not_recorded(
    stub: AnthropicStub, path: str, body: Any, headers: dict[str, str], status: int, message: str
) -> None:
    got, data = _post(stub, path, body, headers)
    assert got == status and data["type"] == "error" and message in data["error"]["message"]
    assert stub.calls() == 0


def test_vertex_route_without_the_version_prefix_and_healthz(stub: AnthropicStub) -> None:
    vertex_body = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 8, "messages": []}
    status, data = _post(stub, VERTEX_PATH.removeprefix("/v1"), vertex_body)
    assert status == 200 and data["model"] == MODEL and stub.requests[0].platform == "vertex"
    conn = http.client.HTTPConnection(stub.host, stub.port, timeout=5)
    conn.request("GET", "/healthz")
    assert conn.getresponse().read() == b"ok"
    conn.request("GET", "/v1/models/claude-sonnet-4-6")  # models.retrieve: doctor --network
    assert json.loads(conn.getresponse().read())["id"] == "claude-sonnet-4-6"
    conn.request("GET", "/v1/nothing")
    response = conn.getresponse()
    assert response.status == 404 and json.loads(response.read())["error"]["type"] == "not_found_error"
    conn.close()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (403, "permission_error"),
        (413, "request_too_large"),
        (418, "invalid_request_error"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ],
)
def test_http_error_types_by_status(stub: AnthropicStub, status: int, kind: str) -> None:
    stub.script(Reply.http_error(status))
    got, data = _post(stub, "/v1/messages")
    assert (got, data["error"]["type"]) == (status, kind)


def test_concurrent_requests_latency_wait_and_reset(stub: AnthropicStub) -> None:
    stub.latency = 0.05
    stub.script(Reply.text("queued"))
    assert post_at_once(stub, 6, "/v1/messages", json.dumps(BODY).encode(), HEADERS) == [200] * 6
    assert not stub.wait_for_calls(7, timeout=0.05)
    stub.reset()
    assert (stub.latency, stub.calls(), stub.requests) == (0.0, 0, [])


def test_cli_serves_until_sigterm() -> None:
    check_cli_serves_until_sigterm("devstack.anthropic_stub", "anthropic-stub")


def test_answers_heed_the_constraints_a_description_states() -> None:
    """Claude's structured outputs cannot enforce bounds; the transform states them in the
    description, and the stub answers like a model that reads them."""
    from devstack.anthropic_stub import heeded

    stated = {"type": "object", "properties": {"c": {"type": "number", "description": "{minimum: 0, maximum: 1}"}}}
    assert heeded(stated)["properties"]["c"] | {} == {
        "type": "number",
        "description": "{minimum: 0, maximum: 1}",
        "minimum": 0,
        "maximum": 1,
    }
    assert heeded({"type": "string", "description": "see {not json: @}", "minLength": 2})["minLength"] == 2
