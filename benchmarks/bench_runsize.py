"""Run size: what a step costs as one run grows. For each N, one run of N independent READY steps
written at once (for N < 100, as many such runs one after another as make 100 steps), delivered
Eventarc-like (acknowledged at once, pushed concurrently) through the relay
(benchmarks/eventarc_relay.py) to ``INSTANCES`` fresh function instances, the stub answering in
``STUB_LATENCY`` s, ``MAX_PARALLEL_STEPS`` per instance: fan-out's set-up with the runs folded into
one. Per N: wall time against the ideal, the function processes' CPU per step, the event payload
per step, failed claim preconditions, the steps left behind, exactly once, and the READY →
SUCCEEDED latencies; then the CPU per step fitted as ``a + b·N`` over the sizes (a flat cost per
step is ``b ≈ 0``). Goals (issue 15): CPU per step at the largest N within 1.5× the smallest N's, wall time
within 1.5× ideal at the largest N; correctness (no step left behind, each exactly once) is
reported for ``make bench`` to fail on, never a timing.
"""

from __future__ import annotations

import math
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any

from benchmarks.bench_stack import MAX_PARALLEL_STEPS, SETTLED, STUB_LATENCY, write_runs
from benchmarks.eventarc_relay import EventarcRelay
from benchmarks.measure import GroupSampler, percentiles, rounded
from benchmarks.report import RUN_SIZE_GOAL
from benchmarks.stack import BenchStack, object_count, read_runs

SIZES = (10, 100, 500)
INSTANCES = 2
IDLE_SECONDS = 5.0  # no status moved and no event in flight for this long: nothing will move them
TIMEOUT_SECONDS = 120.0  # per size, whatever still moves
HISTOGRAM_BINS = 20
MEASURED_STEPS = 100  # a smaller N is measured over as many runs, one after another

StackFactory = Callable[[], AbstractContextManager[BenchStack]]


def ideal_seconds(steps: int, instances: int) -> float:
    """Fan-out's ideal with concurrent delivery: waves of ``MAX_PARALLEL_STEPS`` per instance, each
    the model's latency."""
    return math.ceil(steps / (MAX_PARALLEL_STEPS * instances)) * STUB_LATENCY


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least squares ``y = a + b·x``: (a, b). One distinct x: the mean, flat."""
    n = len(xs)
    if n == 0 or n != len(ys):
        raise ValueError("fit_line needs as many ys as xs, at least one")
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    spread = sum((x - mean_x) ** 2 for x in xs)
    if spread == 0:
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return mean_y - slope * mean_x, slope


def histogram(samples: list[float], bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Counts of ``samples`` in ``bins`` equal bins from 0 to their maximum (ms)."""
    top = max(samples, default=0.0)
    width = max(math.ceil(top / bins), 1)
    counts = [0] * bins
    for value in samples:
        counts[min(int(value // width), bins - 1)] += 1
    return {"binMs": width, "counts": counts}


def run_size(
    stack_factory: StackFactory,
    sizes: Sequence[int] = SIZES,
    instances: int = INSTANCES,
    measured_steps: int = MEASURED_STEPS,
) -> dict[str, Any]:
    """The figure: each size in ``sizes`` (ascending) on one stack, with fresh instances for each."""
    started = time.monotonic()
    with stack_factory() as stack:
        stack.emulator.register_trigger("bench-run-size")  # only the emulator's own project's writes fire
        by_size = {str(n): one_run(stack, n, instances, measured_steps) for n in sorted(sizes)}
    return summarize(by_size, instances, time.monotonic() - started)


def summarize(by_size: dict[str, dict[str, Any]], instances: int, seconds: float) -> dict[str, Any]:
    """The figure from its parts: each part's CPU per step against the smallest N's, the fit, and
    the headline (the largest N) judged against the goals."""
    parts = sorted(by_size.values(), key=lambda part: part["steps"])
    smallest, largest = parts[0], parts[-1]
    for part in parts:
        part["cpuToSmallest"] = round(part["cpuMsPerStep"] / max(smallest["cpuMsPerStep"], 1e-9), 2)
    a, b = fit_line([p["steps"] for p in parts], [p["cpuMsPerStep"] for p in parts])
    return {
        "sizes": [part["steps"] for part in parts],
        "instances": instances,
        "maxParallelSteps": MAX_PARALLEL_STEPS,
        "stubLatencyMs": STUB_LATENCY * 1000,
        "steps": largest["steps"],
        "ratioToIdeal": largest["ratioToIdeal"],
        "cpuGrowth": largest["cpuToSmallest"],  # CPU per step, largest N to smallest N
        "cpuFitMs": {"a": round(a, 2), "b": round(b, 4)},  # CPU ms per step = a + b·N
        "stuckRunning": sum(part["stuckRunning"] for part in parts),
        "unsettledSteps": sum(part["unsettledSteps"] for part in parts),
        "exactlyOnce": all(part["exactlyOnce"] for part in parts),
        "figureSeconds": round(seconds, 1),
        "goal": f"CPU/step at the largest N <= {RUN_SIZE_GOAL}x the smallest N's, wall <= {RUN_SIZE_GOAL}x ideal, "
        "0 steps left behind, each exactly once",
        "bySize": by_size,
    }


def one_run(stack: BenchStack, n: int, instances: int, measured_steps: int = MEASURED_STEPS) -> dict[str, Any]:
    """Runs of ``n`` READY steps, one at a time, through the relay to ``instances`` fresh, warmed
    instances: as many runs as make ``measured_steps`` (one for N >= 100 by default), so that CPU
    time, counted in 10 ms clock ticks, is measured over enough steps."""
    db, bucket = stack.db(stack.emulator.project), stack.bucket(stack.emulator.project)
    tag = f"runsize-{n}-{uuid.uuid4().hex[:6]}"
    with warm_instances(stack, f"runsize-{n}", instances) as (functions, relay):
        logged = [len(f.json_log_lines()) for f in functions]
        stack.stub.reset()
        before = relay.forwarded_bytes, relay.pushed
        with GroupSampler([f.pid or 0 for f in functions]) as fn, GroupSampler([stack.emulator.pid or 0]) as emu:
            runs = [_one(db, relay, f"{tag}-{i:02d}", n) for i in range(math.ceil(measured_steps / n))]
            quiet(relay)  # the events our last writes caused are part of the cost
        delivered = {"payload": relay.forwarded_bytes - before[0], "events": relay.pushed - before[1]}
    part = _outcome(n, instances, runs)
    measured, usage = len(runs) * n, fn.usage()
    part |= {
        "cpuSeconds": round(usage.cpu_seconds, 2),
        "cpuMsPerStep": round(usage.cpu_seconds * 1000 / measured, 2),
        "emulatorCpuSeconds": round(emu.usage().cpu_seconds, 2),
        "peakRssMiB": round(usage.peak_rss_bytes / 2**20, 1),
        "events": delivered["events"],
        "payloadKBPerStep": round(delivered["payload"] / 1000 / measured, 1),
        "modelCalls": stack.stub.calls(),
        "artifacts": object_count(bucket, f"flow_runs/{tag}-"),
    }
    part |= _log_counts([line for f, skip in zip(functions, logged, strict=True) for line in f.json_log_lines()[skip:]])
    part["exactlyOnce"] = part["succeededExactlyOnce"] == measured == part["modelCalls"] == part["artifacts"]
    return part


WARMUP_ROUNDS = 10


@contextmanager
def warm_instances(stack: BenchStack, name: str, count: int) -> Iterator[tuple[list[Any], EventarcRelay]]:
    """``count`` fresh function instances (``MAX_PARALLEL_STEPS`` each) behind the Eventarc-like
    relay, each having run a step, the relay quiet; stopped on the way out."""
    db = stack.db(stack.emulator.project)
    settings = {"MAX_PARALLEL_STEPS": str(MAX_PARALLEL_STEPS)}
    functions = [stack.function(stack.emulator.project, f"{name}-{i}", settings) for i in range(count)]
    try:
        with EventarcRelay(stack.functions_port, [f.url for f in functions]) as relay:
            _warm(db, relay, functions, f"warmup-{name}")
            quiet(relay)
            yield functions, relay
    finally:
        for function in functions:
            function.stop()


def _warm(db: Any, relay: EventarcRelay, functions: Sequence[Any], tag: str) -> None:
    """Until every instance has run a step, so that no import of a model client is measured.
    Round robin alone does not see to it: an event left over from the last size takes a turn."""
    for attempt in range(WARMUP_ROUNDS):
        if all(any(line.get("message") == "step.succeeded" for line in f.json_log_lines()) for f in functions):
            return
        wait_settled(db, relay, write_runs(db, f"{tag}-{attempt}", len(functions), 1))
    raise RuntimeError(f"an instance ran no step in {WARMUP_ROUNDS} warm-up rounds: its cold start would be measured")


Written = tuple[datetime, dict[str, dict[str, Any]]]  # when a run was written, its steps at the end


def _one(db: Any, relay: EventarcRelay, tag: str, n: int) -> Written:
    written = write_runs(db, tag, 1, n)
    [(run_id, wrote)] = written.items()
    return wrote, wait_settled(db, relay, written)[run_id]["steps"]


def _outcome(n: int, instances: int, runs: list[Written]) -> dict[str, Any]:
    """What the runs' documents show: statuses, time to a run's last SUCCEEDED against the ideal
    (the median run's), and the latencies (written READY → SUCCEEDED; waiting READY; claimed →
    SUCCEEDED)."""
    done = [(wrote, s) for wrote, steps in runs for s in steps.values() if s["status"] == "SUCCEEDED"]
    wall, ideal = statistics.median(_wall(wrote, steps) for wrote, steps in runs), ideal_seconds(n, instances)

    def ms(later: str, earlier: str | None) -> list[float]:
        return [((s[later] - (s[earlier] if earlier else wrote)).total_seconds()) * 1000 for wrote, s in done]

    end_to_end = ms("finishedAt", None)
    statuses = Counter(s["status"] for _, steps in runs for s in steps.values())
    once = [s for _, s in done if s.get("attempt") == 1 and s["outputs"].get("llmCalls") == 1]
    return {
        "steps": n,
        "runs": len(runs),
        "wallSeconds": round(wall, 2),
        "idealSeconds": round(ideal, 2),
        "ratioToIdeal": round(wall / ideal, 2),
        "statuses": dict(statuses),
        "succeeded": len(done),
        "succeededExactlyOnce": len(once),
        "stuckRunning": statuses["RUNNING"],
        "unsettledSteps": sum(count for status, count in statuses.items() if status not in SETTLED),
        "stepLatencyMs": rounded(percentiles(end_to_end), 0),  # written READY -> SUCCEEDED
        "waitReadyMs": rounded(percentiles(ms("startedAt", None)), 0),  # written READY -> claimed
        "executionMs": rounded(percentiles(ms("finishedAt", "startedAt")), 0),  # claimed -> SUCCEEDED
        "latencyHistogram": histogram(end_to_end),
        "samplesMs": [round(value) for value in end_to_end],
    }


def _wall(wrote: datetime, steps: dict[str, dict[str, Any]]) -> float:
    """Seconds from the run's write to its last SUCCEEDED step."""
    finished = [s["finishedAt"] for s in steps.values() if s["status"] == "SUCCEEDED"]
    return max((max(finished, default=wrote) - wrote).total_seconds(), 1e-9)


def _log_counts(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """From the instances' JSON logs (docs/contract.md "Log events"): events handled, claims that
    lost their precondition, claims given up after their rounds, finalizes that conflicted past
    their rounds (``step.finalize_retry``) or failed."""
    messages = Counter(line.get("message") for line in lines)
    reasons = Counter(line.get("reason") for line in lines if line.get("message") == "step.claim_conflict")
    return {
        "eventsReceived": messages["event.received"],
        "failedClaimPreconditions": reasons["run_changed_since_snapshot"],
        "claimsGivenUp": reasons["gave_up_after_rounds"],
        "claimConflictsByReason": dict(reasons),
        "finalizeRetries": messages["step.finalize_retry"],
        "finalizeFailures": messages["step.finalize_failed"],
    }


def wait_settled(db: Any, relay: EventarcRelay, written: dict[str, datetime]) -> dict[str, dict[str, Any]]:
    """The runs once every step is SUCCEEDED or FAILED, or once no status has moved and no event
    has been in flight for ``IDLE_SECONDS`` (nobody is left to move them: no sweeper runs here),
    or after ``TIMEOUT_SECONDS``."""
    ids, latest = list(written), dict[str, dict[str, Any]]()
    start = progress_at = time.monotonic()
    progress: list[str] = []
    while time.monotonic() - start < TIMEOUT_SECONDS:
        latest = read_runs(db, ids)
        statuses = [s["status"] for run in latest.values() for s in run["steps"].values()]
        if all(status in SETTLED for status in statuses):
            break
        if statuses != progress or not relay.idle():
            progress, progress_at = statuses, time.monotonic()
        elif time.monotonic() - progress_at > IDLE_SECONDS:
            break
        time.sleep(min(0.5, 0.05 + 0.001 * len(statuses)))  # a big run's document is not read too often
    return latest


def quiet(relay: EventarcRelay, seconds: float = 1.0, timeout: float = 15.0) -> None:
    """Until no event has come or been in flight for ``seconds`` (at most ``timeout``)."""
    start = quiet_since = time.monotonic()
    seen = -1
    while time.monotonic() - start < timeout:
        if not relay.idle() or relay.received != seen:
            seen, quiet_since = relay.received, time.monotonic()
        elif time.monotonic() - quiet_since >= seconds:
            return
        time.sleep(0.1)
