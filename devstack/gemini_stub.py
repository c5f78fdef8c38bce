"""Local HTTP stub of the Gemini ``generateContent`` REST API (standard library only).

Usage::

    with GeminiStub() as stub:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=stub.base_url, api_version="v1beta"))
        stub.script(Reply.http_error(429, retry_delay="1.5s"), Reply.ok())
        stub.script(Reply.blocked(), model="gemini-2.5-pro")  # per-model queue
        ...  # flash: 1st call -> 429, 2nd -> schema-valid JSON; pro: blocked
        assert stub.wait_for_calls(3) and stub.calls("gemini-2.5-pro") == 1

CLI: ``python -m devstack.gemini_stub --host 127.0.0.1 --port 8089 [--latency 0.2]`` prints
``gemini-stub listening on http://HOST:PORT`` and serves until SIGINT/SIGTERM.

Routes: POST ``/{v1|v1beta|v1beta1}/models/{model}:generateContent`` (Developer API) and
``/{v1|v1beta1}/projects/{p}/locations/{l}/publishers/google/models/{model}:generateContent`` (Vertex; also
without ``projects/{p}/locations/{l}/``, as Vertex express mode sends it); GET ``/healthz``; GET
``/{v1|v1beta|v1beta1}/models/{model}`` (``models.get``, what ``doctor --network`` asks); anything else -> 404
Google error JSON, invalid JSON -> 400. A request pops the next Reply of its model's queue, else of the global
queue, else ``Reply.ok()``: JSON from :func:`example_for_schema` for ``generationConfig.responseJsonSchema`` (or
the OpenAPI-style ``responseSchema``), seeded by ``contents`` + schema: identical requests get identical text.

google-genai 3.4.0 against this stub (asserted in tests/unit/test_gemini_stub.py):

* Vertex: ``genai.Client(vertexai=True, project="p", location="l", credentials=<Credentials with a token>,
  http_options=HttpOptions(base_url=stub.base_url))`` posts to
  ``/v1beta1/projects/p/locations/l/publishers/google/models/{model}:generateContent`` (``/v1/...`` with
  ``api_version="v1"``); ``vertexai=True, api_key=...`` posts to
  ``/v1beta1/publishers/google/models/{model}:generateContent``; with neither it posts to ``base_url`` itself
  (404 here). The Developer API defaults to ``v1``.
* Non-200 -> ``errors.ClientError`` (4xx) / ``errors.ServerError`` (5xx), no retries unless
  ``HttpOptions(retry_options=...)``. ``err.code`` = HTTP status, ``err.status`` e.g. ``"RESOURCE_EXHAUSTED"``,
  and ``err.details`` is the WHOLE parsed body (a dict)::

      {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [
          {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]}}

  Retry-After is only in ``err.response.headers["retry-after"]``. A non-JSON error body gives
  ``err.details == {"message": <body text>, "status": <reason phrase>}``.
* A reply slower than ``HttpOptions(timeout=<ms>)`` raises ``httpx2.ReadTimeout`` (a ``httpx2.TimeoutException``;
  the SDK's transport is httpx2, not httpx), not wrapped in an SDK error.
* ``response.text`` skips parts with ``thought: true``; it is ``None`` when no non-thought text part exists
  (``Reply.empty()``, ``Reply.finish(reason)``, ``Reply.blocked()``).

200s that a proxy or a broken endpoint may answer with:

* ``Reply.html_page()``: an HTML page (``text/html``), e.g. a captive portal; the SDK's ``json.loads`` fails.
* ``Reply.raw(200, b"[1, 2]")``: any body and content type; the SDK makes an empty response of ``[]``,
  ``null``, ``""`` or ``{}``.
* ``Reply.text_part(["a", 1])``: a candidate whose text part is not a string; the SDK's pydantic
  validation rejects it, and its error's text quotes the value.
* ``Reply.ok().with_fields(responseId="x" * 1_100_000)``: any top-level field of a 200 answer replaced
  (``candidates``, ``usageMetadata``, ``modelVersion``...) by a JSON value, for outsized or odd fields.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from devstack.scripted_stub import Response, ScriptedReply, ScriptedStub, StubHandler, canon, serve_cli

__all__ = ["GeminiStub", "RecordedRequest", "Reply", "example_for_schema", "main"]

_GRPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_ROUTES = (
    re.compile(r"/(?P<ver>v1|v1beta|v1beta1)/models/(?P<model>[^/:]+):generateContent"),
    re.compile(
        r"/(?P<ver>v1|v1beta1)/(?:projects/[^/]+/locations/[^/]+/)?"
        r"publishers/google/models/(?P<model>[^/:]+):generateContent"
    ),
)
_WORDS = ("amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor", "iris", "lumen", "maple", "orbit")
_NUMERIC_KEYWORDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "multipleOf")
_SOFT_DEPTH, _MAX_DEPTH = 6, 24  # past soft: only required properties / minItems items
_JSON_CT = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Reply(ScriptedReply):
    """One scripted response; build it with the classmethods, not the constructor.

    ``kind`` is ok | finish | blocked | truncated | empty | thoughts | raw | delay; errors
    are ``raw`` replies whose body and headers are rendered when the Reply is built. ``fields``
    (top-level fields of a 200 answer, as JSON text) replace the generated ones: see ``with_fields``.
    """

    finish_reason: str = "STOP"

    @classmethod
    def text(cls, text: str, finish_reason: str = "STOP") -> Reply:
        return cls(kind="finish", content=text, finish_reason=finish_reason)

    @classmethod
    def http_error(
        cls,
        status: int,
        message: str = "scripted error from gemini stub",
        retry_delay: str | None = None,
        retry_after: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        """Google error JSON; ``retry_delay`` adds RetryInfo, ``retry_after`` the header, ``headers``
        any others (e.g. ``{"retry-after-ms": "1500"}``)."""
        info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        body = _error_body(status, message, [] if retry_delay is None else [info])
        sent: tuple[tuple[str, str], ...] = (("Content-Type", _JSON_CT),)
        sent += () if retry_after is None else (("Retry-After", retry_after),)
        sent += tuple((headers or {}).items())
        return cls(kind="raw", status=status, body=body, headers=sent)

    @classmethod
    def blocked(cls, reason: str = "SAFETY") -> Reply:
        return cls(kind="blocked", finish_reason=reason)

    @classmethod
    def finish(cls, reason: str, text: str | None = None) -> Reply:
        """A candidate with ``reason``; without text its content is ``{"role": "model"}``."""
        return cls(kind="finish", finish_reason=reason, content=text)

    @classmethod
    def truncated(cls) -> Reply:
        """MAX_TOKENS with the first half of the ``ok()`` JSON text."""
        return cls(kind="truncated", finish_reason="MAX_TOKENS")

    @classmethod
    def empty(cls) -> Reply:
        return cls(kind="empty")

    @classmethod
    def with_thoughts(cls, thought: str = "thinking...") -> Reply:
        """A ``{"text": thought, "thought": true}`` part, then the ``ok()`` JSON part."""
        return cls(kind="thoughts", content=thought)

    @classmethod
    def raw(cls, status: int, body: bytes, content_type: str = "application/json") -> Reply:
        """``body`` as is: with status 200, a body that is not a GenerateContentResponse."""
        headers = (("Content-Type", content_type),)
        return cls(kind="raw", status=status, body=body, headers=headers)

    @classmethod
    def text_part(cls, value: Any) -> Reply:
        """A STOP candidate whose only part is ``{"text": value}``: pass a list, a number or an
        object for a text part that is not a string."""
        part = {"role": "model", "parts": [{"text": value}]}
        return cls.ok().with_fields(candidates=[{"content": part, "finishReason": "STOP", "index": 0}])


@dataclass(frozen=True)
class RecordedRequest:
    """One routed request with a JSON object body; header names are lower-cased."""

    path: str
    api_version: str
    model: str
    headers: dict[str, str]
    body: dict[str, Any]
    received_at: float


# ---------------------------------------------------------------- schema examples
class _Gen:
    """Walks a schema; the rng seeded per call makes output depend only on (schema, seed)."""

    def __init__(self, root: dict[str, Any], seed: str) -> None:
        self.root, self.rng = root, random.Random(seed)  # noqa: S311  # nosec B311  # reproducible fake data, not secrets

    def resolve(self, schema: Any) -> dict[str, Any]:
        node: Any = schema if isinstance(schema, dict) else {}
        for _ in range(_MAX_DEPTH):
            if isinstance(node.get("$ref"), str):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                node = {**self.pointer(node["$ref"]), **rest}
            elif isinstance(node.get("allOf"), list):
                rest = {k: v for k, v in node.items() if k != "allOf"}
                node = _merge([rest, *(self.resolve(b) for b in node["allOf"])])
            else:
                break
        return cast(dict[str, Any], node)

    def pointer(self, ref: str) -> dict[str, Any]:
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/") if ref not in ("#", "#/") else []:
            node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
        return node if isinstance(node, dict) else {}

    def value(self, schema: Any, name: str, depth: int) -> Any:
        node = self.resolve(schema)
        if depth > _MAX_DEPTH:
            return None
        if "const" in node:
            return node["const"]
        if isinstance(node.get("enum"), list) and node["enum"]:
            return self.rng.choice(node["enum"])
        branch = self.branch(node)
        if branch is not None:
            return self.value(branch, name, depth + 1)
        kind = _type_of(node)
        if kind == "object":
            return self.obj(node, depth)
        if kind == "array":
            return self.arr(node, name, depth)
        if kind in ("integer", "number"):
            return self.number(node, kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        return None if kind == "null" else self.string(node, name)

    def branch(self, node: dict[str, Any]) -> dict[str, Any] | None:
        """First non-null anyOf/oneOf branch merged with its sibling keywords."""
        for key in ("anyOf", "oneOf"):
            if isinstance(node.get(key), list) and node[key]:
                branches = [self.resolve(b) for b in node[key]]
                pick = next((b for b in branches if b.get("type") != "null"), branches[0])
                return _merge([{k: v for k, v in node.items() if k != key}, pick])
        return None

    def obj(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        props: dict[str, Any] = node.get("properties") or {}
        required: list[str] = node.get("required") or []
        keys = [k for k in props if depth < _SOFT_DEPTH or k in required]
        out = {k: self.value(props[k], k, depth + 1) for k in keys}
        extra = node.get("additionalProperties", {})
        for key in required:
            if key not in out:
                out[key] = self.value(extra, key, depth + 1)
        while extra is not False and len(out) < int(node.get("minProperties", 0)):
            key = f"extra_{len(out)}"
            out[key] = self.value(extra, key, depth + 1)
        return out

    def arr(self, node: dict[str, Any], name: str, depth: int) -> list[Any]:
        prefix: list[Any] = node.get("prefixItems") or []
        items = node.get("items", {})
        low = int(node.get("minItems", 0))
        count = max(low, 1 if depth < _SOFT_DEPTH else 0)
        if "maxItems" in node:
            count = min(count, int(node["maxItems"]))
        if items is False:
            count = min(count, len(prefix))
        item_name = name[:-1] if name.endswith("s") and len(name) > 1 else name
        return [self.value(prefix[i] if i < len(prefix) else items, item_name, depth + 1) for i in range(count)]

    def string(self, node: dict[str, Any], name: str) -> str:
        word = self.rng.choice(_WORDS)
        slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "value"
        text = {
            "date": "2024-05-17",
            "date-time": "2024-05-17T09:30:00Z",
            "time": "09:30:00Z",
            "email": f"{word}@example.com",
            "uri": f"https://example.com/{slug}/{word}",
            "uuid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
        }.get(str(node.get("format", "")), f"{slug}-{word}")
        while len(text) < int(node.get("minLength", 0)):
            text += "-" + self.rng.choice(_WORDS)
        return text[: int(node["maxLength"])] if "maxLength" in node else text

    def number(self, node: dict[str, Any], integer: bool) -> int | float:
        lo, xlo, hi, xhi, mult = (node.get(k) for k in _NUMERIC_KEYWORDS)

        def fits(v: float) -> bool:
            in_range = (lo is None or v >= lo) and (hi is None or v <= hi)
            in_range = in_range and (xlo is None or v > xlo) and (xhi is None or v < xhi)
            whole = not integer or float(v).is_integer()
            return in_range and whole and (not mult or float(v / mult).is_integer())

        low = max((b for b in (lo, xlo) if b is not None), default=None)
        high = min((b for b in (hi, xhi) if b is not None), default=None)
        step = float(mult or 1)
        cands = [float(self.rng.randint(1, 100)) + (0.0 if integer or mult else 0.5)]
        cands += [] if low is None else [low, low + step]
        cands += [] if high is None else [high, high - step]
        cands += [] if low is None or high is None else [(low + high) / 2]
        for v in (s for c in cands for s in _snap(c, mult, integer)):
            if fits(v):
                return int(v) if integer else v
        return int(low or 0) if integer else float(low or 0)


def _snap(value: float, mult: Any, integer: bool) -> Iterator[float]:
    if mult:
        first = math.ceil(value / mult)
        for k in range(first, first + 16):
            yield from (k * mult, round(k * mult, 12))
    else:
        yield float(math.ceil(value)) if integer else value


def _type_of(node: dict[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((t for t in kind if t != "null"), "null")
    if isinstance(kind, str):
        return kind.lower()
    if "properties" in node or "additionalProperties" in node or "required" in node:
        return "object"
    return "array" if "items" in node or "prefixItems" in node else "string"


def _merge(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for node in nodes:
        for key, val in node.items():
            if key == "properties":
                out[key] = {**out.get(key, {}), **val}
            elif key == "required":
                out[key] = list(dict.fromkeys([*out.get(key, []), *val]))
            else:
                out[key] = val
    return out


def _lower_types(node: Any) -> Any:
    if isinstance(node, list):
        return [_lower_types(v) for v in node]
    if not isinstance(node, dict):
        return node
    return {k: v.lower() if k == "type" and isinstance(v, str) else _lower_types(v) for k, v in node.items()}


def example_for_schema(schema: dict[str, Any], seed: str) -> Any:
    """Deterministic JSON value valid against ``schema`` (a JSON Schema 2020-12 subset).

    Emits every property, ``max(minItems, 1)`` array items (only required properties and
    ``minItems`` items below depth 6), the first non-null anyOf/oneOf branch, merged allOf,
    local ``$ref`` (``#/$defs/...``, ``#/definitions/...``, ``#``). Not honoured: pattern,
    uniqueItems, contains, patternProperties, not, if/then/else, dependent*.
    """
    if not schema:
        return {"ok": True}
    return _Gen(schema, seed).value(schema, "value", 0)


# ---------------------------------------------------------------- responses
def _answer(body: dict[str, Any]) -> str:
    config = body.get("generationConfig") or {}
    schema = config.get("responseJsonSchema")
    if not isinstance(schema, dict):
        raw = config.get("responseSchema")
        schema = _lower_types(raw) if isinstance(raw, dict) else None
    seed = hashlib.sha256(canon({"contents": body.get("contents"), "schema": schema}).encode())
    return json.dumps(example_for_schema(schema or {}, seed.hexdigest()), ensure_ascii=False)


def _parts(reply: Reply, body: dict[str, Any]) -> list[dict[str, Any]] | None:
    if reply.kind == "finish":
        return None if reply.content is None else [{"text": reply.content}]
    if reply.kind == "empty":
        return []
    answer = _answer(body)
    if reply.kind == "truncated":
        return [{"text": answer[: len(answer) // 2]}]
    if reply.kind == "thoughts":
        return [{"text": reply.content, "thought": True}, {"text": answer}]
    return [{"text": answer}]


def _usage(body: dict[str, Any], parts: list[dict[str, Any]]) -> dict[str, int]:
    """Deterministic token counts: len(text) // 4 + 1 per prompt and per part."""
    prompt = len(canon([body.get("systemInstruction"), body.get("contents")])) // 4 + 1
    cand = sum(len(p["text"]) // 4 + 1 for p in parts if not p.get("thought"))
    thoughts = sum(len(p["text"]) // 4 + 1 for p in parts if p.get("thought"))
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": cand,
        "thoughtsTokenCount": thoughts,
        "cachedContentTokenCount": 0,
        "totalTokenCount": prompt + cand + thoughts,
    }


def _success(reply: Reply, body: dict[str, Any], model_version: str) -> dict[str, Any]:
    parts = [] if reply.kind == "blocked" else _parts(reply, body)
    out: dict[str, Any] = {"promptFeedback": {"blockReason": reply.finish_reason}}
    if reply.kind != "blocked":
        content: dict[str, Any] = {"role": "model"} | ({} if parts is None else {"parts": parts})
        out = {"candidates": [{"content": content, "finishReason": reply.finish_reason, "index": 0}]}
    out["usageMetadata"] = _usage(body, parts or [])
    out |= {"modelVersion": model_version, "responseId": uuid.uuid4().hex[:22]}
    return reply.fields_over(out)


def _error_body(status: int, message: str, details: list[dict[str, Any]]) -> bytes:
    name = _GRPC_STATUS.get(status, "UNKNOWN" if status >= 500 else "FAILED_PRECONDITION")
    err = {"code": status, "message": message, "status": name, "details": details}
    return json.dumps({"error": err}).encode()


# ---------------------------------------------------------------- server
_MODEL_GET = re.compile(r"^/(?:v1|v1beta|v1beta1)/models/([^/:]+)$")


class _Handler(StubHandler["GeminiStub"]):
    server_version = "gemini-stub/1"

    def _fail(self, status: int, message: str) -> None:
        self._send(*Reply.http_error(status, message).sent())

    def _get(self, path: str) -> None:
        model = _MODEL_GET.match(path)
        if model:  # models.get: what `doctor --network` asks, costing no tokens
            body = {"name": f"models/{model.group(1)}", "displayName": model.group(1), "version": "stub"}
            self._send(200, {"Content-Type": "application/json"}, json.dumps(body).encode())
        else:
            self._fail(404, f"Not found: GET {self.path}")

    def do_POST(self) -> None:
        body = self._json_object()
        route = next(filter(None, (r.fullmatch(self._path) for r in _ROUTES)), None)
        if route is None:
            self._fail(404, f"Method not found: POST {self.path}")
        elif body is None:
            self._fail(400, "Invalid JSON payload received: expected a JSON object.")
        else:
            headers = self._headers()
            self._answer(RecordedRequest(self.path, route["ver"], route["model"], headers, body, time.monotonic()))


class GeminiStub(ScriptedStub[Reply, RecordedRequest]):
    """In-process fake Gemini endpoint; see the module docstring."""

    thread_name = "gemini-stub"
    handler = _Handler

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, latency: float = 0.0, model_version: str = "stub-001"
    ) -> None:
        super().__init__(Reply, host, port, latency)
        self.model_version = model_version

    @property
    def base_url(self) -> str:
        return self.url

    def _model_key(self, model: str) -> str:
        return model.rsplit("/", 1)[-1]  # "models/gemini-x" and "gemini-x" are one model

    def _render(self, reply: Reply, request: RecordedRequest) -> Response:
        payload = _success(reply, request.body, self.model_version)
        return 200, {"Content-Type": _JSON_CT}, json.dumps(payload, ensure_ascii=False).encode()


def main(argv: list[str] | None = None) -> int:
    return serve_cli(GeminiStub, "Local Gemini generateContent stub", 8089, argv)


if __name__ == "__main__":
    raise SystemExit(main())
