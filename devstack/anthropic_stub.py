"""Local HTTP stub of the Anthropic Messages API and of Claude on Vertex AI (standard library only).

Usage::

    with AnthropicStub() as stub:
        client = anthropic.Anthropic(api_key="k", base_url=stub.base_url, max_retries=0)
        stub.script(Reply.http_error(429, retry_after="2"), Reply.ok())
        stub.script(Reply.refusal(), model="claude-opus-4-7")  # per-model queue
        ...  # sonnet: 1st call -> 429, 2nd -> schema-valid JSON; opus: refusal
        assert stub.wait_for_calls(3) and stub.calls("claude-opus-4-7") == 1

CLI: ``python -m devstack.anthropic_stub --host 127.0.0.1 --port 8091 [--latency 0.2]`` prints
``anthropic-stub listening on http://HOST:PORT`` and serves until SIGINT/SIGTERM.

Routes: POST ``/v1/messages`` (Anthropic API: the model is the body's ``model``, the ``anthropic-version``
header is required) and ``/v1/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:rawPredict``
(Vertex AI: the model is in the path, the body carries ``anthropic_version`` and no ``model``; also without the
leading ``/v1``); GET ``/healthz``, ``/v1/models`` and ``/v1/models/{model}`` (``models.retrieve``, what
``doctor --network`` asks). A request without ``x-api-key`` or ``Authorization`` is a 401, a malformed
one (not a JSON object, no ``max_tokens`` or ``messages``, ``stream: true``, a ``model`` in a Vertex body) a 400,
an unknown route a 404, all in Anthropic's error shape and not recorded. A request pops the next Reply of its
model's queue, else of the global queue, else ``Reply.ok()``: a ``text`` block holding JSON from
:func:`devstack.gemini_stub.example_for_schema` for ``output_config.format.schema`` (``{"ok": true}`` without
one; bounds a description states, ``{minimum: 0, maximum: 1}``, are heeded as a model would), seeded by
``system`` + ``messages`` + schema, so identical requests get identical text, with ``stop_reason`` ``end_turn``
and a ``usage`` block.

anthropic 2.14.0 against this stub (asserted in tests/unit/test_anthropic_stub.py):

* ``Anthropic(api_key=k, base_url=stub.base_url)`` posts to ``/v1/messages`` with ``Authorization: Bearer k``
  (this SDK sends the key as a bearer token, not as ``x-api-key``) and ``anthropic-version: 2026-10-21``.
  ``messages.create(..., output_config={"format": {"type": "json_schema", "schema": s}})`` sends
  ``output_config`` as given, with no ``anthropic-beta`` header (structured outputs are GA in this SDK).
* ``AnthropicVertex(region="r", project_id="p", credentials=<google Credentials with a token>,
  base_url=stub.vertex_base_url)`` (``stub.base_url + "/v1"``) posts to
  ``/v1/projects/p/locations/r/publishers/anthropic/models/{model}:rawPredict`` with ``Authorization: Bearer
  <token>``; the body loses ``model`` and gains ``anthropic_version: "2026-10-21"`` (the SDK's API version, not
  ``vertex-2023-10-16``). Its default base URL already ends in ``/v1``.
* Non-2xx -> ``APIStatusError`` subclasses (``RateLimitError`` for 429, ``OverloadedError`` for 529,
  ``InternalServerError`` for other 5xx): ``err.status_code``, ``err.body`` (the parsed JSON, or the text of a
  non-JSON body), ``err.type`` (``error.type``, e.g. ``"overloaded_error"``), ``err.api_message``, and the
  headers in ``err.response.headers``. With the default ``max_retries=2`` the SDK retries 408, 409, 429 and
  5xx itself; ``max_retries=0`` sends exactly one request.
* A reply slower than the call's ``timeout`` raises ``APITimeoutError``; a refused connection
  ``APIConnectionError`` (its subclass-free parent). Neither carries a status.
* ``messages.create`` builds a ``Message`` without validating it: a 200 of ``{}`` gives a ``Message`` with no
  attributes set, ``[]`` a list, an HTML page (``Reply.html_page()``) a ``str``. Read the raw body instead
  (``messages.with_raw_response.create``) and judge it yourself.

Replies: ``ok()``, ``text(t, stop_reason)``, ``refusal()``, ``max_tokens()`` and ``context_exceeded()`` (the first
half of the ``ok()`` JSON, stop reason ``max_tokens`` / ``model_context_window_exceeded``), ``with_thinking()``
(a ``thinking`` and a ``redacted_thinking`` block before the answer), ``usage(**counts)`` (``ok()`` with those
usage counts), ``http_error(status, ...)`` and ``overloaded()`` (529), ``raw(status, body, content_type, headers)``,
``html_page()``, ``delay(seconds, then)``; ``reply.with_fields(id=..., content=...)`` replaces top-level fields.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devstack.gemini_stub import example_for_schema
from devstack.scripted_stub import Response, ScriptedReply, ScriptedStub, StubHandler, canon, serve_cli

__all__ = ["AnthropicStub", "RecordedRequest", "Reply", "main"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_RESET_HEADERS = ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset")
_MESSAGES = re.compile(r"/v1/messages")
_VERTEX = re.compile(
    r"(?:/v1)?/projects/[^/]+/locations/[^/]+/publishers/anthropic/models/(?P<model>[^/:]+):rawPredict"
)
_JSON_CT = "application/json"


@dataclass(frozen=True)
class Reply(ScriptedReply):
    """One scripted response; build it with the classmethods, not the constructor.

    ``kind`` is ok | text | truncated | refusal | thinking | raw | delay; errors are ``raw`` replies
    rendered when the Reply is built. ``fields`` (top-level fields of a 200 answer, as JSON text)
    replace the generated ones; ``usage`` (counts) is merged over the generated usage block.
    """

    stop_reason: str = "end_turn"
    usage_counts: tuple[tuple[str, int], ...] = ()

    @classmethod
    def text(cls, text: str, stop_reason: str = "end_turn") -> Reply:
        return cls(kind="text", content=text, stop_reason=stop_reason)

    @classmethod
    def refusal(cls, text: str | None = None) -> Reply:
        """``stop_reason: refusal`` with ``stop_details``; content empty unless ``text`` is given."""
        return cls(kind="refusal", content=text, stop_reason="refusal")

    @classmethod
    def max_tokens(cls) -> Reply:
        """The first half of the ``ok()`` JSON, ``stop_reason: max_tokens``."""
        return cls(kind="truncated", stop_reason="max_tokens")

    @classmethod
    def context_exceeded(cls) -> Reply:
        """The first half of the ``ok()`` JSON, ``stop_reason: model_context_window_exceeded``."""
        return cls(kind="truncated", stop_reason="model_context_window_exceeded")

    @classmethod
    def with_thinking(cls, thought: str = "thinking...") -> Reply:
        """A ``thinking`` block with ``thought`` and a ``redacted_thinking`` block, then the ``ok()`` text."""
        return cls(kind="thinking", content=thought)

    @classmethod
    def usage(cls, **counts: int) -> Reply:
        """``ok()`` whose usage block has these counts (e.g. ``cache_read_input_tokens=40``)."""
        return cls(usage_counts=tuple(counts.items()))

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str = "scripted error from anthropic stub",
        error_type: str | None = None,
        retry_after: str | None = None,
        reset: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Anthropic's error JSON (``error.type`` by status unless given); ``retry_after`` sets the
        header, ``reset`` (RFC 3339) the ``anthropic-ratelimit-{requests,tokens}-reset`` headers,
        ``headers`` any others."""
        kind = error_type or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        body = json.dumps({"type": "error", "error": {"type": kind, "message": message}, "request_id": _id("req")})
        sent: tuple[tuple[str, str], ...] = (("Content-Type", _JSON_CT), ("request-id", _id("req")))
        sent += () if retry_after is None else (("retry-after", retry_after),)
        sent += () if reset is None else tuple((name, reset) for name in _RESET_HEADERS)
        sent += tuple((headers or {}).items())
        return cls(kind="raw", status=status, body=body.encode(), headers=sent)

    @classmethod
    def overloaded(cls, message: str = "Overloaded") -> Reply:
        """529 ``overloaded_error``, as the API answers when it is out of capacity."""
        return cls.http_error(529, message)

    @classmethod
    def raw(
        cls, status: int, body: bytes, content_type: str = _JSON_CT, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """``body`` as is (with status 200, a body that may not be a Message at all), with ``headers``
        (e.g. a recorded reply's ``retry-after`` and ``anthropic-ratelimit-*``) after the content type."""
        sent = (("Content-Type", content_type), *(headers or {}).items())
        return cls(kind="raw", status=status, body=body, headers=sent)


@dataclass(frozen=True)
class RecordedRequest:
    """One routed, well-formed request; header names are lower-cased. ``platform`` is
    ``anthropic`` (``/v1/messages``) or ``vertex`` (``:rawPredict``)."""

    path: str
    platform: str
    model: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float


# ---------------------------------------------------------------- responses
def _id(prefix: str) -> str:
    return f"{prefix}_stub{uuid.uuid4().hex[:20]}"


def request_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The structured-output schema of a Messages request body, if it has one."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    schema = fmt.get("schema") if isinstance(fmt, dict) else None
    return schema if isinstance(schema, dict) else None


_STATED = re.compile(r"\{([^{}]*)\}")  # "{minimum: 0, maximum: 1}": constraints moved into a description
_STATED_PAIR = re.compile(r"\s*([A-Za-z]+)\s*:\s*([^,]+)")


def heeded(schema: Any) -> Any:
    """``schema`` with the constraints a description states (as the structured-outputs transform
    writes them: ``{minimum: 0, maximum: 1}``) put back as keywords: the stub answers as a model
    that reads its instructions, so an answer keeps the bounds the API itself cannot enforce."""
    if isinstance(schema, list):
        return [heeded(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    node = {key: heeded(value) for key, value in schema.items()}
    for group in _STATED.findall(str(schema.get("description") or "")):
        for key, raw in _STATED_PAIR.findall(group):
            with contextlib.suppress(ValueError):
                node.setdefault(key, json.loads(raw.strip()))
    return node


def _answer(body: dict[str, Any]) -> str:
    schema = request_schema(body)
    seed = hashlib.sha256(
        canon({"system": body.get("system"), "messages": body.get("messages"), "schema": schema}).encode()
    )
    return json.dumps(example_for_schema(heeded(schema or {}), seed.hexdigest()), ensure_ascii=False)


def _blocks(reply: Reply, body: dict[str, Any]) -> list[dict[str, Any]]:
    if reply.kind in ("text", "refusal"):
        return [] if reply.content is None else [{"type": "text", "text": reply.content}]
    answer = _answer(body)
    if reply.kind == "truncated":
        return [{"type": "text", "text": answer[: len(answer) // 2]}]
    text = {"type": "text", "text": answer}
    if reply.kind == "thinking":
        thought = {"type": "thinking", "thinking": reply.content, "signature": "c2lnbmF0dXJl"}
        return [thought, {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="}, text]
    return [text]


def _usage(reply: Reply, body: dict[str, Any], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """Deterministic token counts: len(text) // 4 + 1 for the prompt and per output block."""
    output = sum(len(b.get("text") or b.get("thinking") or b.get("data") or "") // 4 + 1 for b in blocks)
    counts: dict[str, Any] = {
        "input_tokens": len(canon([body.get("system"), body.get("messages")])) // 4 + 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output,
        "service_tier": "standard",
    }
    return counts | dict(reply.usage_counts)


def _success(reply: Reply, body: dict[str, Any], model: str) -> dict[str, Any]:
    blocks = _blocks(reply, body)
    out: dict[str, Any] = {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": _usage(reply, body, blocks),
    }
    if reply.kind == "refusal":
        out["stop_details"] = {"type": "refusal", "category": None, "explanation": None}
    return reply.fields_over(out)


# ---------------------------------------------------------------- server
def _problem(platform: str, headers: Mapping[str, str], body: dict[str, Any] | None) -> tuple[int, str] | None:
    """What the real API would reject this request for (status, message), or None."""
    if not (headers.get("x-api-key") or headers.get("authorization")):
        return 401, "x-api-key header is required"
    if body is None:
        return 400, "The request body is not valid JSON: expected a JSON object."
    missing = [key for key in ("max_tokens", "messages") if key not in body]
    if platform == "anthropic":
        missing += [] if "model" in body else ["model"]
        if not headers.get("anthropic-version"):
            return 400, "anthropic-version: header is required"
    elif "model" in body:
        return 400, "model: Extra inputs are not permitted"
    elif "anthropic_version" not in body:
        missing.append("anthropic_version")
    if missing:
        return 400, f"{missing[0]}: Field required"
    return (400, "stream: this stub does not stream") if body.get("stream") else None


class _Handler(StubHandler["AnthropicStub"]):
    server_version = "anthropic-stub/1"

    def _fail(self, status: int, message: str) -> None:
        self._send(*Reply.http_error(status, message).sent())

    def _get(self, path: str) -> None:
        if path.startswith("/v1/models/"):  # models.retrieve: what `doctor --network` asks, costing no tokens
            model = path.removeprefix("/v1/models/")
            body = {"type": "model", "id": model, "display_name": model, "created_at": "2026-01-01T00:00:00Z"}
            self._send(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
        elif path == "/v1/models":
            listing: dict[str, Any] = {"data": [], "has_more": False, "first_id": None, "last_id": None}
            self._send(200, {"Content-Type": "application/json"}, json.dumps(listing).encode())
        else:
            self._fail(404, f"Not found: GET {self.path}")

    def do_POST(self) -> None:
        body, path = self._json_object(), self._path
        vertex = _VERTEX.fullmatch(path)
        platform = "vertex" if vertex else "anthropic" if _MESSAGES.fullmatch(path) else None
        if platform is None:
            self._fail(404, f"Not found: POST {self.path}")
            return
        headers = self._headers()
        problem = _problem(platform, headers, body)
        if problem is not None or body is None:
            self._fail(*(problem or (400, "invalid request")))
            return
        model = vertex["model"] if vertex else str(body["model"])
        self._answer(RecordedRequest(self.path, platform, model, headers, body, time.monotonic()))


class AnthropicStub(ScriptedStub[Reply, RecordedRequest]):
    """In-process fake Anthropic Messages endpoint (API and Vertex AI); see the module docstring."""

    thread_name = "anthropic-stub"
    handler = _Handler

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0) -> None:
        super().__init__(Reply, host, port, latency)

    @property
    def base_url(self) -> str:
        """For ``Anthropic(base_url=...)``."""
        return self.url

    @property
    def vertex_base_url(self) -> str:
        """For ``AnthropicVertex(base_url=...)``, whose base URL ends in the API version."""
        return f"{self.url}/v1"

    def _render(self, reply: Reply, request: RecordedRequest) -> Response:
        payload = json.dumps(_success(reply, request.body, request.model), ensure_ascii=False).encode()
        return 200, {"Content-Type": _JSON_CT, "request-id": _id("req")}, payload


def main(argv: list[str] | None = None) -> int:
    return serve_cli(AnthropicStub, "Local Anthropic Messages stub (API and Vertex AI rawPredict)", 8091, argv)


if __name__ == "__main__":
    raise SystemExit(main())
