"""A local HTTP server that counts requests and serves a permissive schema for any path: a test that
a schema never reaches the network asserts it was asked nothing (a retrieval would make validation
pass)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCHEMA = b'{"$id": "x", "$dynamicAnchor": "meta", "type": ["object", "integer"]}'


class SchemaHost(ThreadingHTTPServer):
    hits = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Count(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(SCHEMA)))
        self.end_headers()
        self.wfile.write(SCHEMA)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def schema_host() -> Iterator[SchemaHost]:
    server = SchemaHost(("127.0.0.1", 0), _Count)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
