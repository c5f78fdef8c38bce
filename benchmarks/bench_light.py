"""Benchmarks that need no Firestore: cold start, the no-op event, the LLM layer, each as a ratio
to a floor measured in the same run (these machines are noisy: absolute times alone mean little).
"""

from __future__ import annotations

import base64
import io
import os
import site
import statistics
import subprocess
import sys
import uuid
from contextlib import redirect_stdout
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from benchmarks.measure import ROOT, counting_connections, percentiles, rounded, timed_us

if TYPE_CHECKING:
    pass

HEAVY = ("google.cloud.firestore", "google.cloud.storage", "google.genai", "jsonschema", "pydantic")


FLOOR_IMPORT = "import functions_framework; from google.events.cloud.firestore_v1.types import DocumentEventData"


def _python(*args: str) -> subprocess.CompletedProcess[str]:
    # -S and an explicit path: no .pth import hooks (the dev venv's editable-install finder costs
    # ~27 ms that a deployed function, installed from requirements.txt, does not pay)
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()])}
    argv = [sys.executable, "-S", *args]  # this interpreter on the benchmark's own code, no shell
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True, env=env)  # noqa: S603  # nosec B603


def _import_seconds(statement: str) -> tuple[float, list[str]]:
    probe = (
        "import sys, time; t = time.perf_counter(); " + statement + "; d = time.perf_counter() - t; "
        f"print(d); print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = _python("-c", probe)
    seconds, loaded = out.stdout.splitlines()[:2] if "\n" in out.stdout.strip() else (out.stdout.strip(), "")
    return float(seconds), [m for m in loaded.split(",") if m]


def _import_tree(statement: str) -> list[tuple[str, int, int | None]]:
    """``-X importtime``: (module, microseconds its own body took, index of the module that
    imported it) in the order the interpreter reports them (children before their parent)."""
    entries: list[tuple[str, int, int]] = []  # name, self us, nesting level
    for line in _python("-X", "importtime", "-c", statement).stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, _, field = line.split(":", 1)[1].split("|")
            entries.append((field.strip(), int(own), (len(field) - len(field.lstrip()) - 1) // 2))
    parents: dict[int, int] = {}
    waiting: list[int] = []
    for index, (_, _, level) in enumerate(entries):
        while waiting and entries[waiting[-1]][2] > level:
            parents[waiting.pop()] = index
        waiting.append(index)
    return [(name, own, parents.get(index)) for index, (name, own, _) in enumerate(entries)]


def _ours(module: str) -> bool:
    return module == "main" or module.split(".")[0] == "worker_llm_client"


def import_gap(rounds: int = 5) -> dict[str, float]:
    """Where ``import main`` spends its time beyond the floor: the self time of every module the
    floor does not load, charged to our package or to the third-party package our code imported
    that pulled it in (asyncio, say, to structlog); medians over ``rounds``, largest first."""
    by_package: dict[str, list[float]] = {}
    for _ in range(rounds):
        floor = {name for name, _, _ in _import_tree(FLOOR_IMPORT)}
        tree = _import_tree("import main")
        sums: dict[str, float] = {}
        for index, (name, own, parent) in enumerate(tree):
            if name in floor:
                continue
            top = index  # climb to the outermost third-party module of the chain that imported it
            while parent is not None and tree[parent][0] not in floor and not _ours(tree[parent][0]):
                top, parent = parent, tree[parent][2]
            package = tree[top][0].split(".")[0]
            sums[package] = sums.get(package, 0) + own / 1000
        for package, ms in sums.items():
            by_package.setdefault(package, []).append(ms)
    medians = {package: round(statistics.median(values), 1) for package, values in by_package.items()}
    return dict(sorted(medians.items(), key=lambda item: -item[1]))


def cold_start(rounds: int = 15) -> dict[str, Any]:
    """``import main`` against the floor: functions-framework plus google-events' types."""
    ours, floor, loaded = [], [], set()
    for _ in range(rounds):  # interleaved, so load on the machine hits both alike
        floor.append(_import_seconds(FLOOR_IMPORT)[0])
        seconds, heavy = _import_seconds("import main")
        ours.append(seconds)
        loaded.update(heavy)
    ours_ms, floor_ms = statistics.median(ours) * 1000, statistics.median(floor) * 1000
    return {"mainMs": round(ours_ms, 1), "floorMs": round(floor_ms, 1), "ratio": round(ours_ms / floor_ms, 3),
            "heavyModulesLoaded": sorted(loaded), "gapByPackageMs": import_gap(), "goal": "ratio <= 1.2"}  # fmt: skip


def noop_event(rounds: int = 2000) -> dict[str, Any]:
    """An event our own write caused (nothing runnable): the handler against the bare decode."""
    sys.path.insert(0, str(ROOT))
    from google.events.cloud.firestore_v1.types import DocumentEventData

    from devstack.cloudevents import document_event_bytes
    from devstack.documents import step_document
    from worker_llm_client.event_handler import handle_firestore_event
    from worker_llm_client.observability import configure_logging

    configure_logging("INFO")
    lease_end = datetime(2030, 1, 1, tzinfo=UTC)  # far ahead: the claim is live, the event a no-op
    claim = {"token": uuid.uuid4().hex, "leaseExpiresAt": lease_end}  # a claim token as the executor makes them
    running = step_document("RUNNING", attempt=1, claim=claim)
    steps = {f"s{i}": running if i % 2 else step_document("SUCCEEDED") for i in range(10)}
    body = base64.b64encode(document_event_bytes("bench", "run-1", {"status": "RUNNING", "steps": steps}))
    attributes = {"id": "e", "document": "flow_runs/run-1", "type": "google.cloud.firestore.document.v1.written"}

    def no_executor() -> Any:
        raise AssertionError("a no-op event built the executor")

    def handler() -> None:
        handle_firestore_event(attributes, body, no_executor, "bench")

    pb = DocumentEventData.pb()
    with redirect_stdout(io.StringIO()), counting_connections() as connections:
        ours = timed_us(handler, rounds)
    floor = timed_us(lambda: pb.FromString(base64.b64decode(body)), rounds)
    mine, base = percentiles(ours), percentiles(floor)
    return {
        "handlerUs": rounded(mine, 1),
        "decodeUs": rounded(base, 1),
        "ratioP50": round(mine["p50"] / base["p50"], 2),
        "connections": connections[0],
        "goal": "0 RPCs",
    }
