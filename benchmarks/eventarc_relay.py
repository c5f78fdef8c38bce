"""Eventarc's delivery model between the Firestore emulator's trigger and the function instances.

The emulator POSTs each event and waits for the answer before sending the next: one event at a
time, whatever the instance count; and an event whose POST fails is dropped, never retried (seen
when functions-framework's gunicorn closes the idle keep-alive connection the emulator reuses:
"Failed to publish v2 event ... Unexpected end of file from server"). Eventarc in production pushes
to the service with as much concurrency as its instances offer and retries failures with backoff.

The relay listens where the emulator delivers and forwards every event (headers and body untouched)
to the instances round robin; a failed push (no answer or not 2xx) is retried after
``retry_seconds``, up to ``attempts`` times, like Eventarc. ``serial=False``: it acknowledges at once
and pushes from ``concurrency`` threads (Eventarc's concurrency). ``serial=True``: it answers the
emulator only once the push succeeded, so events still go one at a time, in the emulator's order
(the emulator's own pacing, without its dropped events).
"""

from __future__ import annotations

import itertools
import queue
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.services import LOOPBACK_OPENER

FORWARDED = ("content-type",)


class EventarcRelay:
    def __init__(
        self,
        port: int,
        targets: list[str],
        concurrency: int = 100,
        attempts: int = 5,
        retry_seconds: float = 0.5,
        host: str = "127.0.0.1",
        serial: bool = False,
    ) -> None:
        self.targets, self.attempts, self.retry_seconds, self.serial = targets, attempts, retry_seconds, serial
        self._serial_lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._next_target = itertools.cycle(targets)
        self._queue: queue.Queue[tuple[dict[str, str], bytes, int] | None] = queue.Queue()
        self._lock = threading.Lock()
        self.received = self.pushed = self.failed_pushes = self.dropped = self._retrying = 0
        self.forwarded_bytes = 0  # the bodies of the pushes that succeeded: the events' payload
        self._server = _Server((host, port), self)
        self._threads = [threading.Thread(target=self._server.serve_forever, name="relay-accept", daemon=True)]
        self._threads += [
            threading.Thread(target=self._push_loop, name=f"relay-push-{i}", daemon=True) for i in range(concurrency)
        ]

    def __enter__(self) -> EventarcRelay:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            timers, self._timers = self._timers, []
        for timer in timers:  # retries not yet due are dropped with the relay
            timer.cancel()
        for _ in self._threads[1:]:
            self._queue.put(None)
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def accept(self, headers: dict[str, str], body: bytes) -> None:
        with self._lock:
            self.received += 1
        if not self.serial:
            self._queue.put((headers, body, 1))
            return
        with self._serial_lock:  # one at a time, retried in place, answered once pushed
            for attempt in range(1, self.attempts + 1):
                if self._push_once(headers, body):
                    return
                if attempt < self.attempts:
                    time.sleep(self.retry_seconds)
            with self._lock:
                self.dropped += 1

    def idle(self) -> bool:
        """Concurrent mode: nothing queued, being pushed or waiting to be retried. (In serial mode
        the emulator waits for each push, so it knows when the relay is done.)"""
        with self._lock:
            return self._queue.unfinished_tasks == 0 and self._retrying == 0

    def _push_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            headers, body, attempt = item
            try:
                self._push(headers, body, attempt)
            finally:
                self._queue.task_done()

    def _push_once(self, headers: dict[str, str], body: bytes) -> bool:
        with self._lock:
            target = next(self._next_target)
        request = urllib.request.Request(f"{target}/", data=body, method="POST", headers=headers)  # noqa: S310 - local http:// functions
        try:
            with LOOPBACK_OPENER.open(request, timeout=600) as response:
                ok = bool(200 <= response.status < 300)
        except (urllib.error.URLError, OSError):
            ok = False
        with self._lock:
            self.pushed += ok
            self.failed_pushes += not ok
            self.forwarded_bytes += len(body) if ok else 0
        return ok

    def _push(self, headers: dict[str, str], body: bytes, attempt: int) -> None:
        if self._push_once(headers, body):
            return
        if attempt >= self.attempts:
            with self._lock:
                self.dropped += 1
            return
        with self._lock:
            self._retrying += 1
        timer = threading.Timer(self.retry_seconds, self._requeue, (headers, body, attempt + 1))
        with self._lock:
            self._timers.append(timer)
        timer.start()

    def _requeue(self, headers: dict[str, str], body: bytes, attempt: int) -> None:
        self._queue.put((headers, body, attempt))
        with self._lock:
            self._retrying -= 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], relay: EventarcRelay) -> None:
        self.relay = relay
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        keep = {k: v for k, v in self.headers.items() if k.lower().startswith("ce-") or k.lower() in FORWARDED}
        self.server.relay.accept(keep, body)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
