"""What the unit tests of the model-API stubs (``devstack.*_stub``) check alike: raw HTTP exchanges,
calls at once, and the CLI each stub module runs as."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
from email.message import Message
from pathlib import Path
from typing import Any

from devstack.local_server import LocalServer
from devstack.scripted_stub import ScriptedStub

REPO_ROOT = Path(__file__).resolve().parents[1]
JSON_HEADERS = {"Content-Type": "application/json"}


def exchange(
    stub: LocalServer, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes, Message]:
    """One request on a fresh connection: status, body, and headers (looked up case-insensitively)."""
    conn = http.client.HTTPConnection(stub.host, stub.port, timeout=5)
    try:
        conn.request(method, path, body=body or None, headers=JSON_HEADERS if headers is None else headers)
        response = conn.getresponse()
        return response.status, response.read(), response.headers
    finally:
        conn.close()


def post_at_once(
    stub: ScriptedStub[Any, Any], n: int, path: str, body: bytes, headers: dict[str, str] | None = None
) -> list[int]:
    """``n`` POSTs from as many threads at once; the stub has seen all ``n`` before they are joined.
    Their statuses, in the order they came back."""
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(exchange(stub, "POST", path, body, headers)[0]))
        for _ in range(n)
    ]
    for thread in threads:
        thread.start()
    assert stub.wait_for_calls(n, timeout=5)
    for thread in threads:
        thread.join(timeout=5)
    return statuses


def check_cli_serves_until_sigterm(module: str, name: str, *args: str) -> None:
    """``python -m <module> [args] --port 0`` prints ``<name> listening on http://127.0.0.1:PORT``,
    answers ``/healthz`` there, and exits 0 on SIGTERM."""
    cmd = [sys.executable, "-m", module, *args, "--port", "0"]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT) as proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith(f"{name} listening on http://127.0.0.1:")
        host, port = line.rsplit("//", 1)[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().read() == b"ok"
        conn.close()
        proc.terminate()
        assert proc.wait(timeout=5) == 0
