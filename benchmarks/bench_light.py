"""Benchmarks that need no Firestore: cold start, the no-op event, the LLM layer, each as a ratio
to a floor measured in the same run (these machines are noisy: absolute times alone mean little).
"""

from __future__ import annotations

import base64
import io
import os
import site
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("google.cloud.firestore", "google.cloud.storage", "google.genai", "jsonschema", "pydantic")


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p95": at(0.95), "p99": at(0.99)}


def _import_seconds(statement: str) -> tuple[float, list[str]]:
    probe = (
        "import sys, time; t = time.perf_counter(); " + statement + "; d = time.perf_counter() - t; "
        f"print(d); print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    # -S and an explicit path: no .pth import hooks (the dev venv's editable-install finder costs
    # ~27 ms that a deployed function, installed from requirements.txt, does not pay)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}
    out = subprocess.run(
        [sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True, env=env
    )
    seconds, loaded = out.stdout.splitlines()[:2] if "\n" in out.stdout.strip() else (out.stdout.strip(), "")
    return float(seconds), [m for m in loaded.split(",") if m]


def cold_start(rounds: int = 15) -> dict[str, Any]:
    """``import main`` against the floor: functions-framework plus google-events' types."""
    floor_stmt = "import functions_framework; from google.events.cloud.firestore_v1.types import DocumentEventData"
    ours, floor, loaded = [], [], set()
    for _ in range(rounds):  # interleaved, so load on the machine hits both alike
        floor.append(_import_seconds(floor_stmt)[0])
        seconds, heavy = _import_seconds("import main")
        ours.append(seconds)
        loaded.update(heavy)
    ours_ms, floor_ms = statistics.median(ours) * 1000, statistics.median(floor) * 1000
    return {"mainMs": round(ours_ms, 1), "floorMs": round(floor_ms, 1), "ratio": round(ours_ms / floor_ms, 3),
            "heavyModulesLoaded": sorted(loaded), "goal": "ratio <= 1.2"}  # fmt: skip


@contextmanager
def counting_connections() -> Iterator[list[int]]:
    """Counts every outgoing socket connection: an RPC needs one, a no-op must make none."""
    count = [0]
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        count[0] += 1
        return original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    try:
        yield count
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def _timed(fn: Callable[[], Any], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


def noop_event(rounds: int = 2000) -> dict[str, Any]:
    """An event our own write caused (nothing runnable): the handler against the bare decode."""
    sys.path.insert(0, str(ROOT))
    from google.events.cloud.firestore_v1.types import DocumentEventData

    from tests.builders import later, step_data
    from tests.events import document_event_bytes
    from worker_llm_client.event_handler import handle_firestore_event
    from worker_llm_client.observability import configure_logging

    configure_logging("INFO")
    leased = {"status": "RUNNING", "attempt": 1, "claim": {"token": "t", "leaseExpiresAt": later(10**8)}}
    steps = {f"s{i}": step_data(**leased) if i % 2 else step_data(status="SUCCEEDED") for i in range(10)}
    body = base64.b64encode(document_event_bytes("bench", "run-1", {"status": "RUNNING", "steps": steps}))
    attributes = {"id": "e", "document": "flow_runs/run-1", "type": "google.cloud.firestore.document.v1.written"}

    def no_executor() -> Any:
        raise AssertionError("a no-op event built the executor")

    def handler() -> None:
        handle_firestore_event(attributes, body, no_executor, "bench")

    pb = DocumentEventData.pb()
    with redirect_stdout(io.StringIO()), counting_connections() as connections:
        ours = _timed(handler, rounds)
    floor = _timed(lambda: pb.FromString(base64.b64decode(body)), rounds)
    mine, base = percentiles(ours), percentiles(floor)
    return {
        "handlerUs": _rounded(mine, 1),
        "decodeUs": _rounded(base, 1),
        "ratioP50": round(mine["p50"] / base["p50"], 2),
        "connections": connections[0],
        "goal": "0 RPCs",
    }


def _rounded(figures: dict[str, float], digits: int, scale: float = 1.0) -> dict[str, float]:
    return {key: round(value * scale, digits) for key, value in figures.items()}


def llm_layer(rounds: int = 300) -> dict[str, Any]:
    """Our Gemini adapter against a direct google-genai call, same stub, same request."""
    import json

    from google.genai import Client, types

    from worker_llm_client.adapters.gemini_client import GeminiClient
    from worker_llm_client.config import Settings
    from worker_llm_client.devstack.gemini_stub import GeminiStub
    from worker_llm_client.models import GenerationSettings, LlmRequest, Turn

    schema = json.loads((ROOT / "schemas" / "weekly_report.json").read_text())
    request = LlmRequest("gemini", "gemini-2.5-flash", "Be terse.", (Turn("user", "Weekly report."),), schema,
                         GenerationSettings(temperature=0.2), (), 30.0)  # fmt: skip
    config = types.GenerateContentConfig(
        system_instruction="Be terse.", response_mime_type="application/json", response_json_schema=schema,
        temperature=0.2, automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        automatic_continuation=False, http_options=types.HttpOptions(timeout=30000),
    )  # fmt: skip
    with GeminiStub() as stub:
        ours = GeminiClient(Settings(project="bench", gemini_api_key="k", gemini_base_url=stub.base_url))
        direct = Client(api_key="k", http_options=types.HttpOptions(base_url=stub.base_url, api_version="v1beta"))

        def sdk() -> Any:
            return direct.models.generate_content(model="gemini-2.5-flash", contents="Weekly report.", config=config)

        for _ in range(20):  # warm both connection pools
            ours.generate(request), sdk()
        mine, base = [], []
        for _ in range(rounds):
            mine += _timed(lambda: ours.generate(request), 1)
            base += _timed(sdk, 1)
        ours.close()
        direct.close()
    a, b = percentiles(mine), percentiles(base)
    return {
        "oursMs": _rounded(a, 3, 1e-3),
        "directMs": _rounded(b, 3, 1e-3),
        "diffP50Ms": round((a["p50"] - b["p50"]) / 1000, 3),
        "diffP95Ms": round((a["p95"] - b["p95"]) / 1000, 3),
        "ratioP50": round(a["p50"] / b["p50"], 3),
        "goal": "diff p95 < 2 ms",
    }
