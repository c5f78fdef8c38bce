"""What the model-API stubs (``gemini_stub``, ``openai_stub``, ``anthropic_stub``) share: a script of
replies, the requests they recorded, the HTTP plumbing and the CLI. Each stub keeps only its wire format:
routes, answer bodies, error shapes, what it records.

A request flows::

    StubHandler.do_POST (the stub's routes and checks) -> a RecordedRequest
      -> ScriptedStub._respond: record it, pop the next Reply (its model's queue, else the global queue,
         else ok()), wait out latency and delay(), then a raw reply as scripted or the stub's _render
      -> StubHandler._send

``stop()`` cuts every wait short.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar, cast

from devstack.local_server import LocalServer

__all__ = ["Response", "ScriptedReply", "ScriptedStub", "StubHandler", "canon", "serve_cli"]

Response = tuple[int, dict[str, str], bytes]  # status, headers, body
_HTML_PAGE = b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>Proxy login required</body></html>"


def canon(value: Any) -> str:
    """Canonical JSON text: what the stubs seed their answers and count their tokens with."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class ScriptedReply:
    """The fields and builders every stub's ``Reply`` has. ``kind`` ``ok`` is the generated answer,
    ``raw`` a status, headers and body sent as they are (errors are raw replies rendered when built),
    ``delay`` waits ``seconds`` and then answers ``then``; a stub adds kinds of its own."""

    kind: str = "ok"
    content: str | None = None
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    seconds: float = 0.0
    then: Self | None = None
    fields: tuple[tuple[str, str], ...] = ()

    @classmethod
    def ok(cls) -> Self:
        """Schema-valid JSON for the request's schema (``{"ok": true}`` if none); the stub's module
        docstring says where it finds the schema."""
        return cls()

    @classmethod
    def delay(cls, seconds: float, then: Self | None = None) -> Self:
        """Answer ``then`` (default ``ok()``) after ``seconds``; cut short by ``stop()``."""
        return cls(kind="delay", seconds=seconds, then=then or cls.ok())

    @classmethod
    def html_page(cls, status: int = 200) -> Self:
        """An HTML page, as a proxy or a captive portal answers in the endpoint's place."""
        return cls(kind="raw", status=status, body=_HTML_PAGE, headers=(("Content-Type", "text/html; charset=utf-8"),))

    def with_fields(self, **fields: Any) -> Self:
        """This reply with top-level fields of its 200 answer replaced by JSON values (e.g. an outsized
        id, or ``usage=None``); later calls add to earlier ones. Not for ``raw`` or ``delay``."""
        self._generated("with_fields")
        encoded = tuple((key, json.dumps(value)) for key, value in fields.items())
        return replace(self, fields=self.fields + encoded)

    def _generated(self, method: str) -> None:
        if self.kind in ("raw", "delay"):
            raise ValueError(f"{method}() applies to a generated 200 answer, not to a {self.kind} reply")

    def after_delay(self) -> Self:
        """What a ``delay`` reply answers once its ``seconds`` are up."""
        return self.then or self.ok()

    def sent(self) -> Response:
        """A ``raw`` reply as it goes out."""
        return self.status, dict(self.headers), self.body

    def fields_over(self, answer: dict[str, Any]) -> dict[str, Any]:
        """A generated 200 ``answer`` with the fields of ``with_fields`` put over it."""
        return answer | {key: json.loads(value) for key, value in self.fields}


class _Recorded(Protocol):
    @property
    def model(self) -> str: ...


ReplyT = TypeVar("ReplyT", bound=ScriptedReply)
RecordT = TypeVar("RecordT", bound=_Recorded)


class ScriptedStub(LocalServer, Generic[ReplyT, RecordT]):
    """Per-model queues of replies and a global one, the recorded requests, ``latency`` (seconds
    before every answer; ``reset()`` puts back the constructor's). A stub sets ``thread_name`` and
    ``handler`` and writes ``_render``."""

    handler: ClassVar[type[StubHandler[Any]]]

    def __init__(self, reply_type: type[ReplyT], host: str, port: int, latency: float) -> None:
        super().__init__(host, port)
        self.latency, self._initial_latency, self._reply_type = latency, latency, reply_type
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._global: deque[ReplyT] = deque()
        self._per_model: dict[str, deque[ReplyT]] = {}
        self._records: list[RecordT] = []

    def _make_server(self) -> ThreadingHTTPServer:
        self._stopping.clear()
        return _StubServer((self.host, self.port), self.handler, self)

    def stop(self) -> None:
        self._stopping.set()
        super().stop()

    def script(self, *replies: ReplyT, model: str | None = None) -> None:
        with self._cond:
            if model is None:
                self._global.extend(replies)
            else:
                self._per_model.setdefault(self._model_key(model), deque()).extend(replies)

    def reset(self) -> None:
        with self._cond:
            self._global.clear()
            self._per_model.clear()
            self._records.clear()
            self.latency = self._initial_latency

    @property
    def requests(self) -> list[RecordT]:
        with self._cond:
            return list(self._records)

    def calls(self, model: str | None = None) -> int:
        with self._cond:
            return sum(1 for r in self._records if model is None or r.model == self._model_key(model))

    def wait_for_calls(self, n: int, timeout: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._records) >= n, timeout)

    def _model_key(self, model: str) -> str:
        """The name a model's queue and calls go by."""
        return model

    def _rejection(self, request: RecordT) -> ReplyT | None:
        """A reply that rejects ``request`` (recorded all the same) before the script is asked."""
        return None

    def _render(self, reply: ReplyT, request: RecordT) -> Response:
        """The generated 200 answer to ``request`` (``reply`` is neither raw nor a delay)."""
        raise NotImplementedError

    def _take(self, request: RecordT) -> ReplyT:
        with self._cond:
            self._records.append(request)
            self._cond.notify_all()
            rejection = self._rejection(request)
            if rejection is not None:
                return rejection
            for source in (self._per_model.get(request.model), self._global):
                if source:
                    return source.popleft()
            return self._reply_type.ok()

    def _respond(self, request: RecordT) -> Response:
        reply = self._take(request)
        if self.latency > 0:
            self._stopping.wait(self.latency)
        while reply.kind == "delay":
            self._stopping.wait(reply.seconds)
            reply = reply.after_delay()
        return reply.sent() if reply.kind == "raw" else self._render(reply, request)


class _StubServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type[StubHandler[Any]], stub: ScriptedStub[Any, Any]) -> None:
        super().__init__(addr, handler)
        self.stub = stub

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # a client that hung up
            super().handle_error(request, client_address)


StubT = TypeVar("StubT", bound=ScriptedStub[Any, Any])


class StubHandler(BaseHTTPRequestHandler, Generic[StubT]):
    """Keep-alive HTTP/1.1, silent, ``GET /healthz`` answered; a stub writes ``do_POST`` and ``_get``
    (every other GET) and sets ``server_version``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: benchmarks send thousands of requests."""

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + the client's delayed
        # ACK add ~40 ms to some keep-alive replies, which would swamp any latency measured here
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def stub(self) -> StubT:
        return cast(StubT, cast(_StubServer, self.server).stub)

    @property
    def _path(self) -> str:
        """The request's path without its query."""
        return self.path.split("?")[0]

    def _headers(self) -> dict[str, str]:
        """The request's headers, names lower-cased."""
        return {k.lower(): v for k, v in self.headers.items()}

    def _json_object(self) -> dict[str, Any] | None:
        """The request's body (read whatever the route) if it is a JSON object, else None."""
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _send(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for key, val in (headers | {"Content-Length": str(len(payload))}).items():
            self.send_header(key, val)
        self.end_headers()
        self.wfile.write(payload)

    def _answer(self, request: Any) -> None:
        """Record ``request`` and send what the script answers it with."""
        self._send(*self.stub._respond(request))

    def do_GET(self) -> None:
        if self._path == "/healthz":
            self._send(200, {"Content-Type": "text/plain"}, b"ok")
        else:
            self._get(self._path)

    def _get(self, path: str) -> None:
        raise NotImplementedError


def serve_cli(
    make: Callable[[str, int, float], LocalServer], description: str, port: int, argv: list[str] | None
) -> int:
    """``--host H --port P --latency S``: prints ``<thread_name> listening on http://HOST:PORT`` and
    serves until SIGINT/SIGTERM."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args(argv)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    server = make(args.host, args.port, args.latency).start()
    print(f"{server.thread_name} listening on {server.url}", flush=True)
    while not done.wait(0.5):
        pass
    server.stop()
    return 0
