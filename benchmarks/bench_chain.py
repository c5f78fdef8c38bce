"""Chain hop: what one dependency hop costs as the run around it grows. A chain of ``CHAIN`` steps,
each depending on the one before, in a run of its own and in a run that also holds ``FILLERS``
settled steps (a big run's document, done steps and their outputs), delivered Eventarc-like
through the relay to ``INSTANCES`` warmed instances, the stub answering in ``STUB_LATENCY`` s.

A hop's cost is a chained step's ``finishedAt`` minus its dependency's, less the model's latency:
everything a hop adds to the chain but the model (the finalize, the claim, rendering, validation,
the artifact). Its start (``startedAt`` minus the dependency's ``finishedAt``: when the claim was
decided) is reported too.

With a trigger registered, the emulator builds and sends a write's event before it answers the
commit (Firestore sends it after the commit), so every hop's write pays for the event of a whole
run document: a cost of the test rig that grows with the run. The figure times small precondition
writes to a settled document of each shape in ``flow_runs`` (triggered) and in ``UNTRIGGERED``
(the same emulator, no trigger); the difference is that event building. Goal (issue 15): the median
hop cost with the fillers, net of that difference, under ``CHAIN_HOP_GOAL`` times the median without
them, net of it too; the raw ratio is printed beside it. The chain must end all SUCCEEDED.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from benchmarks.bench_runsize import INSTANCES, quiet, wait_settled, warm_instances
from benchmarks.bench_stack import STUB_LATENCY
from benchmarks.eventarc_relay import EventarcRelay
from benchmarks.measure import percentiles, rounded
from benchmarks.stack import BenchStack, report_step

CHAIN = 20
FILLERS = 480
REPEATS = 2  # chains per kind of run: the hops of all of them are pooled
WRITES = 20  # the emulator's write latency, sampled per kind of run and collection
UNTRIGGERED = "bench_untriggered"  # no trigger matches it: the emulator's write without an event
CHAIN_HOP_GOAL = 2.0

StackFactory = Callable[[], AbstractContextManager[BenchStack]]


def chain_steps(run_id: str, chain: int = CHAIN, fillers: int = 0) -> dict[str, dict[str, Any]]:
    """``c00`` … each READY and depending on the one before; ``f000`` … settled, with outputs."""
    steps = {
        f"c{i:02d}": report_step(f"{run_id}/c{i:02d}") | ({"dependsOn": [f"c{i - 1:02d}"]} if i else {})
        for i in range(chain)
    }
    done = datetime(2026, 11, 26, tzinfo=UTC)
    for i in range(fillers):
        outputs = {
            "gcs_uri": f"gs://bench-artifacts/flow_runs/{run_id}/f{i:03d}/0123456789abcdef.json",
            "llmCalls": 1,
            "cached": False,
            "usage": {"promptTokens": 412, "outputTokens": 96, "totalTokens": 508, "thoughtsTokens": 0},
            "costUsd": 0.000364,
            "model": "gemini-2.5-flash",
            "modelVersion": "gemini-2.5-flash-001",
            "provider": "gemini",
            "finishReason": "STOP",
            "responseId": "r" * 22,
        }
        steps[f"f{i:03d}"] = report_step(f"{run_id}/f{i:03d}") | {
            "status": "SUCCEEDED",
            "attempt": 1,
            "startedAt": done,
            "finishedAt": done,
            "outputs": outputs,
        }
    return steps


def hop_costs_ms(steps: dict[str, dict[str, Any]], chain: int = CHAIN) -> list[float]:
    """Each hop's cost: a chained step's ``finishedAt`` after its dependency's, less the model's
    latency (everything else: the finalize, the claim, rendering, the artifact), in ms."""
    return [later - earlier - STUB_LATENCY * 1000 for earlier, later in _pairs(steps, chain, "finishedAt")]


def starts_ms(steps: dict[str, dict[str, Any]], chain: int = CHAIN) -> list[float]:
    """Each chained step's ``startedAt`` after its dependency's ``finishedAt``, in ms: when the
    claim was decided (with the next claim in the finalize's write, before that write lands)."""
    return [later - earlier for earlier, later in _pairs(steps, chain, "startedAt")]


def _pairs(steps: dict[str, dict[str, Any]], chain: int, field: str) -> list[tuple[float, float]]:
    def ms(step: dict[str, Any], name: str) -> float | None:
        value = step.get(name)
        return value.timestamp() * 1000 if isinstance(value, datetime) else None

    pairs = []
    for i in range(1, chain):
        earlier, later = ms(steps.get(f"c{i - 1:02d}", {}), "finishedAt"), ms(steps.get(f"c{i:02d}", {}), field)
        if earlier is not None and later is not None:
            pairs.append((earlier, later))
    return pairs


@dataclass(frozen=True)
class Shape:
    """The figure's scale: ``make bench`` uses the defaults, the smoke test a toy."""

    chain: int = CHAIN
    fillers: int = FILLERS
    repeats: int = REPEATS
    writes: int = WRITES


def chain_hop(stack_factory: StackFactory, instances: int = INSTANCES, shape: Shape | None = None) -> dict[str, Any]:
    """The figure: chains in runs of their own, then in runs with ``shape.fillers`` settled steps."""
    shape = shape or Shape()
    started = time.monotonic()
    with stack_factory() as stack:
        stack.emulator.register_trigger("bench-chain-hop")
        db = stack.db(stack.emulator.project)
        with warm_instances(stack, "chain", instances) as (_, relay):
            kinds = {str(fillers): _chains(db, relay, fillers, shape) for fillers in (0, shape.fillers)}
    return summarize(kinds, time.monotonic() - started, shape.chain)


def _chains(db: Any, relay: EventarcRelay, fillers: int, shape: Shape) -> dict[str, Any]:
    costs: list[float] = []
    starts: list[float] = []
    settled: list[bool] = []
    for _ in range(shape.repeats):
        run_id = f"chain-{fillers}-{uuid.uuid4().hex[:6]}"
        written = (
            db.collection("flow_runs")
            .document(run_id)
            .set({"status": "RUNNING", "steps": chain_steps(run_id, shape.chain, fillers)})
        )
        steps = wait_settled(db, relay, {run_id: written.update_time})[run_id]["steps"]
        costs += hop_costs_ms(steps, shape.chain)
        starts += starts_ms(steps, shape.chain)
        settled.append(all(steps[f"c{i:02d}"]["status"] == "SUCCEEDED" for i in range(shape.chain)))
        quiet(relay)
    return {
        "fillers": fillers,
        "hops": len(costs),
        "hopCostMs": rounded(percentiles(costs), 1),
        "startMs": rounded(percentiles(starts), 1),
        "writeMs": rounded(percentiles(write_ms(db, relay, shape.chain, fillers, shape.writes)), 1),
        "untriggeredWriteMs": rounded(
            percentiles(write_ms(db, relay, shape.chain, fillers, shape.writes, UNTRIGGERED)), 1
        ),
        "allSucceeded": all(settled),
    }


def write_ms(
    db: Any, relay: EventarcRelay, chain: int, fillers: int, writes: int, collection: str = "flow_runs"
) -> list[float]:
    """The emulator's latency for one small precondition write to a run like the chain's, settled
    (nothing runnable: its events are no-ops): every hop's write pays it. In ``flow_runs`` the
    trigger matches, and the emulator builds and sends the write's event before it answers, so this
    grows with the document; in another collection no event is built."""
    run_id = f"chain-write-{fillers}-{uuid.uuid4().hex[:6]}"
    steps = chain_steps(run_id, chain, fillers)
    for step in steps.values():
        step["status"] = "SUCCEEDED"
    ref = db.collection(collection).document(run_id)
    received = relay.received
    update_time = ref.set({"status": "RUNNING", "steps": steps}).update_time
    samples = []
    for i in range(writes):
        started = time.perf_counter()
        option = db.write_option(last_update_time=update_time)
        update_time = ref.update({"note": i}, option=option).update_time
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    quiet(relay)
    if collection != "flow_runs" and relay.received != received:
        raise RuntimeError(f"a trigger matched writes to {collection}: its latency would include event building")
    return samples


def event_build_ms(kind: dict[str, Any]) -> float:
    """What the trigger adds to the emulator's write (median triggered less median untriggered, at
    least 0): the event the emulator builds inside the commit, where Firestore builds it after."""
    return max(float(kind["writeMs"].get("p50", 0.0)) - float(kind["untriggeredWriteMs"].get("p50", 0.0)), 0.0)


def _ratio(empty: dict[str, Any], full: dict[str, Any], less: Callable[[dict[str, Any]], float]) -> float:
    """The ratio of the median hops, each less ``less`` of its kind."""
    net = [float(k["hopCostMs"].get("p50", 0.0)) - less(k) for k in (empty, full)]
    return round(net[1] / max(net[0], 1e-9), 2)


def summarize(kinds: dict[str, dict[str, Any]], seconds: float, chain: int = CHAIN) -> dict[str, Any]:
    empty, full = kinds["0"], kinds[str(max(int(k) for k in kinds))]
    return {
        "chain": chain,
        "fillers": full["fillers"],
        "emptyHopMs": empty["hopCostMs"].get("p50"),
        "fillerHopMs": full["hopCostMs"].get("p50"),
        "emptyStartMs": empty["startMs"].get("p50"),
        "fillerStartMs": full["startMs"].get("p50"),
        "emptyWriteMs": empty["writeMs"].get("p50"),
        "fillerWriteMs": full["writeMs"].get("p50"),
        "emptyEventBuildMs": round(event_build_ms(empty), 1),
        "fillerEventBuildMs": round(event_build_ms(full), 1),
        "rawRatio": _ratio(empty, full, lambda _: 0.0),
        "ratio": _ratio(empty, full, event_build_ms),
        "allSucceeded": empty["allSucceeded"] and full["allSucceeded"],
        "figureSeconds": round(seconds, 1),
        "goal": (
            f"hop with {full['fillers']} settled steps < {CHAIN_HOP_GOAL}x the hop in a run of its own, "
            "each net of the emulator's event building inside the write"
        ),
        "byKind": kinds,
    }
