"""An HTTP server of the local stack on a thread of this process (the model-API stubs, the OTLP
receiver): started on a free port by default, stopped with its thread, usable as a context manager."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self


class LocalServer:
    thread_name = "local-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _make_server(self) -> ThreadingHTTPServer:
        """The server to run, bound to ``(host, port)``."""
        raise NotImplementedError

    def start(self) -> Self:
        self._server = self._make_server()
        self.port = self._server.server_address[1]
        serve = {"poll_interval": 0.1}
        self._thread = threading.Thread(target=self._server.serve_forever, name=self.thread_name, kwargs=serve)
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
