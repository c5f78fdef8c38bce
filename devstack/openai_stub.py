"""Local HTTP stub of the OpenAI Chat Completions API (standard library only).

Usage::

    with OpenAiStub() as stub:
        client = openai.OpenAI(api_key="k", base_url=stub.base_url, max_retries=0)  # base_url ends in /v1
        stub.script(Reply.http_error(429, retry_after_ms=1500), Reply.ok())
        stub.script(Reply.refusal(), model="gpt-x")  # per-model queue
        ...  # any model: 1st call -> 429, 2nd -> schema-valid JSON; gpt-x: a refusal
        assert stub.wait_for_calls(3) and stub.calls("gpt-x") == 1

CLI: ``python -m devstack.openai_stub --host 127.0.0.1 --port 8090 [--latency 0.2]`` prints
``openai-stub listening on http://HOST:PORT`` and serves until SIGINT/SIGTERM.

Routes: POST ``/v1/chat/completions``, ``/chat/completions`` and ``/{anything}/chat/completions`` (a
``base_url`` with or without ``/v1`` works); GET ``/healthz``; GET ``/v1/models`` (also ``/models``): the
models scripted or asked for so far. Anything else -> 404, a body that is not a JSON object or has no
``model`` string -> 400, both in OpenAI's error shape ``{"error": {"message", "type", "param", "code"}}``.
``OpenAiStub(api_key="k")`` answers 401 ``invalid_api_key`` to a request without ``Authorization: Bearer k``
(recorded, the script untouched). A request pops the next Reply of its model's queue, else of the global
queue, else ``Reply.ok()``: JSON from :func:`devstack.gemini_stub.example_for_schema` for the schema of
``response_format`` (``json_schema.schema``, or ``schema`` beside ``{"type": "json_object"}`` as llama.cpp's
server takes it), else for the schema written after ``JSON Schema:`` in a system message (JSON mode), else
``{"ok": true}``; seeded by ``messages`` + schema, so identical requests get identical text. ``usage``
counts ``len(text) // 4 + 1`` tokens per prompt and per answer, unless scripted with ``Reply.usage(...)``.

openai 3.57.0 against this stub (asserted in tests/unit/test_openai_stub.py):

* ``client.chat.completions.create(...)`` posts to ``{base_url}/chat/completions`` with
  ``Authorization: Bearer <api_key>``, ``x-stainless-retry-count`` and ``x-stainless-read-timeout`` (the
  call's timeout in seconds); ``extra_body`` keys land at the top level of the JSON body.
* Non-2xx -> ``openai.APIStatusError``: ``BadRequestError`` 400, ``AuthenticationError`` 401,
  ``PermissionDeniedError`` 403, ``NotFoundError`` 404, ``ConflictError`` 409, ``UnprocessableEntityError``
  422, ``RateLimitError`` 429, ``InternalServerError`` >= 500, a plain ``APIStatusError`` otherwise (408).
  ``err.body`` is the ``error`` object (the SDK unwraps ``{"error": ...}``), or the body text when it is
  not JSON; ``err.message`` is ``"Error code: 429 - <message>"``; ``err.type``/``err.code`` come from the
  error object; the headers are in ``err.response.headers``.
* With its default ``max_retries=2`` the SDK retries 408, 409, 429 and 5xx itself (3 requests reach the
  stub); with ``max_retries=0`` exactly one.
* A reply slower than the call's ``timeout`` raises ``openai.APITimeoutError`` (``__cause__``:
  ``httpx2.ReadTimeout``); nothing listening raises ``openai.APIConnectionError`` (``httpx2.ConnectError``).
* A 200 is not validated: with a non-JSON content type ``create()`` returns the body text (a ``str``);
  JSON is built into a ``ChatCompletion`` without validation, so ``[]`` comes back as a list and ``{}``
  as a ChatCompletion without ``choices``. ``with_raw_response.create()`` gives the body bytes as sent.
* ``Reply.refusal()``: ``message.content`` null, ``message.refusal`` the text, ``finish_reason`` "stop";
  ``Reply.truncated()``: half the ``ok()`` JSON, "length"; ``Reply.content_filter()``: content null,
  "content_filter".

200s that a proxy or a broken endpoint may answer with: ``Reply.html_page()`` (``text/html``),
``Reply.raw(200, b"[]")`` (any body, content type and headers), ``Reply.ok().with_fields(choices=[])``
(top-level fields of a generated answer replaced by JSON values: ``choices``, ``usage``, ``model``...).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from devstack.gemini_stub import example_for_schema
from devstack.scripted_stub import Response, ScriptedReply, ScriptedStub, StubHandler, canon, serve_cli

__all__ = ["OpenAiStub", "RecordedRequest", "Reply", "main"]

_COMPLETIONS = re.compile(r"(?:/.*)?/chat/completions")
_MODELS = re.compile(r"(?:/v1)?/models")
_SCHEMA_MARKER = "JSON Schema:"  # JSON mode: the schema follows this in a system message
_JSON_CT = "application/json"
_INVALID, _SERVER_ERROR = "invalid_request_error", "server_error"
_ERROR_KINDS = {  # status -> (type, code) as OpenAI sends them
    400: (_INVALID, None),
    401: (_INVALID, "invalid_api_key"),
    403: ("request_forbidden", None),
    404: (_INVALID, "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


@dataclass(frozen=True)
class Reply(ScriptedReply):
    """One scripted response; build it with the classmethods, not the constructor.

    ``kind`` is ok | text | refusal | truncated | content_filter | raw | delay; errors are ``raw``
    replies whose body and headers are rendered when the Reply is built. ``counts`` (prompt,
    completion, reasoning, cached) replace the computed usage; ``fields`` (top-level fields of a 200
    answer, as JSON text) replace the generated ones.
    """

    finish_reason: str = "stop"
    counts: tuple[int, int, int, int] | None = None

    @classmethod
    def text(cls, text: str, finish_reason: str = "stop") -> Reply:
        return cls(kind="text", content=text, finish_reason=finish_reason)

    @classmethod
    def refusal(cls, message: str = "I'm sorry, but I can't help with that.") -> Reply:
        """``message.refusal`` set, ``content`` null: what OpenAI's structured outputs answer when the
        model declines."""
        return cls(kind="refusal", content=message)

    @classmethod
    def truncated(cls) -> Reply:
        """finish_reason "length" with the first half of the ``ok()`` JSON text."""
        return cls(kind="truncated", finish_reason="length")

    @classmethod
    def content_filter(cls) -> Reply:
        """finish_reason "content_filter" and no content (Azure OpenAI's filtered completion)."""
        return cls(kind="content_filter", finish_reason="content_filter")

    @classmethod
    def usage(cls, prompt: int = 0, completion: int = 0, reasoning: int = 0, cached: int = 0) -> Reply:
        """``ok()`` with these counts: ``reasoning`` is part of ``completion`` and ``cached`` part of
        ``prompt``, as OpenAI reports them; ``total_tokens`` is prompt + completion."""
        return cls().with_usage(prompt, completion, reasoning, cached)

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str = "scripted error from openai stub",
        *,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
        retry_after_ms: float | str | None = None,
        retry_after: float | str | None = None,
        reset_requests: str | None = None,
        reset_tokens: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """OpenAI's error JSON; ``error_type``/``code`` default to what OpenAI sends for ``status``. The
        retry hints become ``retry-after-ms``, ``Retry-After``, ``x-ratelimit-reset-requests`` and
        ``x-ratelimit-reset-tokens`` (e.g. ``"6m0s"``); ``headers`` adds any others."""
        kind, default_code = _ERROR_KINDS.get(status, (_SERVER_ERROR if status >= 500 else _INVALID, None))
        error = {"message": message, "type": error_type or kind, "param": param, "code": code or default_code}
        hints = {
            "retry-after-ms": retry_after_ms,
            "Retry-After": retry_after,
            "x-ratelimit-reset-requests": reset_requests,
            "x-ratelimit-reset-tokens": reset_tokens,
        }
        sent = {"Content-Type": _JSON_CT} | {k: _header(v) for k, v in hints.items() if v is not None}
        return cls.raw(status, json.dumps({"error": error}).encode(), headers=sent | dict(headers or {}))

    @classmethod
    def raw(
        cls, status: int, body: bytes, content_type: str = _JSON_CT, headers: Mapping[str, str] | None = None
    ) -> Reply:
        """``body`` as is, with ``headers`` (which may override the content type)."""
        sent = {"Content-Type": content_type} | dict(headers or {})
        return cls(kind="raw", status=status, body=body, headers=tuple(sent.items()))

    def with_usage(self, prompt: int = 0, completion: int = 0, reasoning: int = 0, cached: int = 0) -> Reply:
        """This reply with the usage counts of :meth:`usage`."""
        self._generated("with_usage")
        return replace(self, counts=(prompt, completion, reasoning, cached))


def _header(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:g}"


@dataclass(frozen=True)
class RecordedRequest:
    """One routed request with a JSON object body; header names are lower-cased."""

    path: str
    model: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float


# ---------------------------------------------------------------- responses
def request_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The schema a request asks for: ``response_format``'s, else one written into a system message."""
    fmt = body.get("response_format")
    fmt = fmt if isinstance(fmt, dict) else {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return schema if isinstance(schema, dict) else None
    if isinstance(fmt.get("schema"), dict):
        return cast(dict[str, Any], fmt["schema"])
    return _schema_in_messages(body.get("messages"))


def _schema_in_messages(messages: Any) -> dict[str, Any] | None:
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict) or message.get("role") not in ("system", "developer"):
            continue
        text = message.get("content")
        at = text.find(_SCHEMA_MARKER) if isinstance(text, str) else -1
        if at < 0:
            continue
        rest = cast(str, text)[at + len(_SCHEMA_MARKER) :]
        try:
            schema, _ = json.JSONDecoder().raw_decode(rest.lstrip())
        except ValueError:
            continue
        if isinstance(schema, dict):
            return schema
    return None


def _answer(body: Mapping[str, Any]) -> str:
    schema = request_schema(body)
    seed = hashlib.sha256(canon({"messages": body.get("messages"), "schema": schema}).encode())
    return json.dumps(example_for_schema(schema or {}, seed.hexdigest()), ensure_ascii=False)


def _message(reply: Reply, body: Mapping[str, Any]) -> dict[str, Any]:
    content: str | None = None
    refusal: str | None = None
    if reply.kind == "refusal":
        refusal = reply.content
    elif reply.kind == "text":
        content = reply.content
    elif reply.kind in ("ok", "truncated"):
        answer = _answer(body)
        content = answer[: len(answer) // 2] if reply.kind == "truncated" else answer
    return {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}


def _usage(reply: Reply, body: Mapping[str, Any], message: Mapping[str, Any]) -> dict[str, Any]:
    said = message["content"] or message["refusal"] or ""
    computed = (len(canon(body.get("messages"))) // 4 + 1, len(said) // 4 + 1 if said else 0, 0, 0)
    prompt, completion, reasoning, cached = reply.counts or computed
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _success(reply: Reply, body: Mapping[str, Any], model: str) -> dict[str, Any]:
    message = _message(reply, body)
    choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}
    out = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": _usage(reply, body, message),
        "service_tier": "default",
        "system_fingerprint": "fp_stub",
    }
    return reply.fields_over(out)


# ---------------------------------------------------------------- server
class _Handler(StubHandler["OpenAiStub"]):
    server_version = "openai-stub/1"

    def _fail(self, status: int, message: str) -> None:
        error = {"message": message, "type": _INVALID, "param": None, "code": None}
        self._send(status, {"Content-Type": _JSON_CT}, json.dumps({"error": error}).encode())

    def _get(self, path: str) -> None:
        if _MODELS.fullmatch(path):
            models = [{"id": m, "object": "model", "created": 0, "owned_by": "openai-stub"} for m in self.stub.models()]
            self._send(200, {"Content-Type": _JSON_CT}, json.dumps({"object": "list", "data": models}).encode())
        else:
            self._fail(404, f"Invalid URL (GET {path})")

    def do_POST(self) -> None:
        body, path = self._json_object(), self._path
        if not _COMPLETIONS.fullmatch(path):
            self._fail(404, f"Invalid URL (POST {path})")
        elif body is None:
            self._fail(400, "We could not parse the JSON body of your request.")
        elif not isinstance(body.get("model"), str):
            self._fail(400, "you must provide a model parameter")
        else:
            self._answer(RecordedRequest(self.path, body["model"], self._headers(), body, time.monotonic()))


class OpenAiStub(ScriptedStub[Reply, RecordedRequest]):
    """In-process fake Chat Completions endpoint; see the module docstring. ``model_version`` is the
    ``model`` of every answer (None: the request's model, as compatible servers echo it)."""

    thread_name = "openai-stub"
    handler = _Handler

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        model_version: str | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(Reply, host, port, latency)
        self.model_version, self.api_key = model_version, api_key

    @property
    def base_url(self) -> str:
        """What to give the SDK as ``base_url``: it appends ``/chat/completions``."""
        return f"{self.url}/v1"

    def models(self) -> list[str]:
        """Every model scripted or asked for so far, sorted."""
        with self._cond:
            return sorted(set(self._per_model) | {r.model for r in self._records})

    def _rejection(self, request: RecordedRequest) -> Reply | None:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply.http_error(401, "Incorrect API key provided.")
        return None

    def _render(self, reply: Reply, request: RecordedRequest) -> Response:
        payload = _success(reply, request.body, self.model_version or request.model)
        return 200, {"Content-Type": _JSON_CT}, json.dumps(payload, ensure_ascii=False).encode()


def main(argv: list[str] | None = None) -> int:
    return serve_cli(OpenAiStub, "Local OpenAI Chat Completions stub", 8090, argv)


if __name__ == "__main__":
    raise SystemExit(main())
