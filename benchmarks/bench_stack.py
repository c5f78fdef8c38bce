"""Benchmarks on the local stack (Firestore emulator, fake-gcs-server, the Gemini stub,
functions-framework): per-step overhead against the minimal calls, throughput and fan-out through
the emulator's trigger, and a duplicate storm. Each figure is printed against a floor or an ideal
measured or derived in the same run; correctness (exactly once, one model call) is checked and
reported alongside, never a timing.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import datetime
from typing import Any

from benchmarks.eventarc_relay import EventarcRelay
from benchmarks.measure import ROOT, GroupSampler, counting_rpcs, percentiles, rounded
from benchmarks.stack import PROFILE, PROMPT, BenchStack, bench_stack, object_count, read_runs, report_step, step_ids

STUB_LATENCY = 0.2
MAX_PARALLEL_STEPS = 8  # the deployed default, set explicitly so the ideal below matches it


# -- 3. per-step overhead -------------------------------------------------------------------------


class InstantModel:
    """A model that answers at once with a valid report: the step's cost without the model's."""

    def __init__(self) -> None:
        from devstack.gemini_stub import example_for_schema

        self._example = example_for_schema
        self._answers: dict[int, str] = {}

    def generate(self, request: Any) -> Any:
        from worker_llm_client.execution_models import LlmResult, Usage

        key = id(request.response_schema)
        if key not in self._answers:
            self._answers[key] = json.dumps(self._example(dict(request.response_schema), "bench"))
        usage = Usage(prompt_tokens=100, output_tokens=50, total_tokens=150)
        return LlmResult(self._answers[key], "STOP", None, "instant-001", uuid.uuid4().hex, usage)


def per_step_overhead(stack: BenchStack, rounds: int = 120, warmup: int = 10, profile: bool = False) -> dict[str, Any]:
    """One READY step claimed, produced (zero-latency model) and finalized by the real executor, vs
    the sum of the calls no executor can avoid: a precondition write, one read of the prompt and
    the profile, one upload, one finalize transaction. Catalog cache cold (every step reads its
    prompt and profile, as the floor does) and warm (the default 30 s TTL, a burst's steady state).
    ``profile``: afterwards, 30 cold-config steps under pyinstrument (docs/profiles/per-step.txt).
    """
    from google.cloud import firestore

    from worker_llm_client.bootstrap import build_executor
    from worker_llm_client.config import Settings
    from worker_llm_client.models import run_from_document

    project = "bench-step"
    db, bucket = stack.db(project), stack.bucket(project)
    base = Settings.from_env(stack.env(project, {"MAX_PARALLEL_STEPS": str(MAX_PARALLEL_STEPS)}))
    with stack.client_env():
        executors = {
            "cold": build_executor(replace(base, catalog_cache_seconds=0), llm=InstantModel()),
            "warm": build_executor(base, llm=InstantModel()),
        }
    runs = db.collection("flow_runs")
    config_refs = [db.collection("prompts").document(PROMPT), db.collection("llm_profiles").document(PROFILE)]
    report = InstantModel().generate(_probe_request()).text.encode()

    def fresh_run(label: str) -> tuple[str, dict[str, Any], Any]:
        run_id = f"step-{label}-{uuid.uuid4().hex[:10]}"
        data = {"status": "RUNNING", "steps": {"report": report_step(run_id)}}
        return run_id, data, runs.document(run_id).set(data).update_time

    def ours(label: str) -> None:
        run_id, data, update_time = fresh_run(label)
        snapshot = run_from_document(run_id, data, update_time)
        with timing(label):
            [result] = executors[label].handle(snapshot)
        if result.status != "SUCCEEDED" or not result.finalized:
            raise RuntimeError(f"per-step benchmark: the step ended {result.status} ({result.code})")

    def floor(label: str) -> None:
        run_id, _, update_time = fresh_run(label)
        ref = runs.document(run_id)

        @firestore.transactional
        def finalize(transaction: Any) -> None:
            ref.get(transaction=transaction)
            transaction.update(ref, {"steps.report.status": "SUCCEEDED"})

        with timing(label):
            ref.update({"steps.report.status": "RUNNING"}, option=db.write_option(last_update_time=update_time))
            list(db.get_all(config_refs))
            bucket.blob(f"floor/{run_id}.json").upload_from_string(report, if_generation_match=0)
            finalize(db.transaction())

    samples: dict[str, list[float]] = {"cold": [], "warm": [], "floor": []}
    calls: dict[str, dict[str, int]] = {}
    with counting_rpcs() as rpcs, redirect_stdout(io.StringIO()):  # the executor's log lines

        @contextlib.contextmanager
        def timing(label: str) -> Iterator[None]:
            rpcs.reset()
            start = time.perf_counter()
            yield
            samples[label].append((time.perf_counter() - start) * 1000)
            calls[label] = rpcs.reset()

        for round_ in range(warmup + rounds):  # interleaved: the machine's noise hits all three alike
            if round_ == warmup:  # connections, the catalog cache, the schema validator are warm
                samples = {label: [] for label in samples}
            ours("cold")
            ours("warm")
            floor("floor")
        if profile:
            from benchmarks.profiles import steps_profile

            def thirty_cold_steps() -> None:
                for _ in range(30):
                    ours("cold")

            what = "30 steps, catalog cache cold, zero-latency model, real Firestore emulator and fake-gcs-server"
            steps_profile(thirty_cold_steps, what)
    for executor in executors.values():
        executor.close()
    p = {label: percentiles(values) for label, values in samples.items()}
    return {
        "coldConfigMs": rounded(p["cold"], 2),
        "warmConfigMs": rounded(p["warm"], 2),
        "floorMs": rounded(p["floor"], 2),
        "ratioP50": round(p["cold"]["p50"] / p["floor"]["p50"], 3),
        "ratioP50WarmConfig": round(p["warm"]["p50"] / p["floor"]["p50"], 3),
        "rpcsPerStep": {label: sum(kinds.values()) for label, kinds in calls.items()},
        "rpcs": calls,  # of the last round, by method
        "rounds": rounds,
        "goal": "ratio <= 1.3",
    }


def _probe_request() -> Any:
    from worker_llm_client.execution_models import GenerationSettings, LlmRequest, Turn

    schema = json.loads((ROOT / "schemas" / "weekly_report.json").read_text())
    return LlmRequest("gemini", "m", "", (Turn("user", "x"),), schema, GenerationSettings(), (), 30.0)


# -- 5. throughput and fan-out --------------------------------------------------------------------

SETTLED = frozenset({"SUCCEEDED", "FAILED"})


def fanout(
    stack: BenchStack, delivery: str, instances: int = 1, runs: int = 100, steps_per_run: int = 10
) -> dict[str, Any]:
    """``runs`` runs of ``steps_per_run`` READY steps written at once; the emulator's trigger delivers
    every write (ours included) through the relay (benchmarks/eventarc_relay.py) to functions-framework.
    ``delivery="emulator"``: one event at a time in the emulator's order, to one instance (the relay
    answers the emulator once the push succeeded, retrying a failed one where the emulator would drop
    the event). ``delivery="eventarc"``: acknowledged at once and pushed concurrently to ``instances``
    instances, as Eventarc does. The model (the stub) answers in ``STUB_LATENCY`` s; every instance
    is warmed first. Steps that stop making progress for ``STALL_SECONDS`` are reported, not waited on.
    """
    project = stack.emulator.project  # only the emulator's own project's trigger fires
    db, bucket = stack.db(project), stack.bucket(project)
    settings = {"MAX_PARALLEL_STEPS": str(MAX_PARALLEL_STEPS)}
    serial = delivery == "emulator"
    count = 1 if serial else instances
    functions = [stack.function(project, f"fanout-{delivery}-{i}", settings) for i in range(count)]
    with EventarcRelay(stack.functions_port, [f.url for f in functions], serial=serial) as relay:
        stack.emulator.register_trigger("bench-fanout")
        _settle(db, write_runs(db, "warmup", count, 1))  # one run per instance: cold starts are not measured
        stack.stub.reset()
        tag = f"fanout-{delivery}-{uuid.uuid4().hex[:6]}"
        with GroupSampler([f.pid for f in functions if f.pid]) as fn, GroupSampler([stack.emulator.pid or 0]) as emu:
            written = write_runs(db, tag, runs, steps_per_run)
            final = _settle(db, written)
        model_calls = stack.stub.calls()
    steps = [(run_id, step) for run_id, run in final.items() for step in run["steps"].values()]
    done = [(run_id, step) for run_id, step in steps if step["status"] == "SUCCEEDED"]
    start = min(written.values())
    end = max((step["finishedAt"] for _, step in done), default=start)
    wall = max((end - start).total_seconds(), 1e-9)
    total = runs * steps_per_run
    if serial:  # one event at a time: a run's waves never overlap another run's
        ideal = runs * math.ceil(steps_per_run / MAX_PARALLEL_STEPS) * STUB_LATENCY
    else:
        ideal = math.ceil(total / (MAX_PARALLEL_STEPS * count)) * STUB_LATENCY
    end_to_end = [(step["finishedAt"] - written[run_id]).total_seconds() * 1000 for run_id, step in done]
    execution = [(step["finishedAt"] - step["startedAt"]).total_seconds() * 1000 for _, step in done]
    usage, emulator_usage = fn.usage(), emu.usage()
    lines = [line for function in functions for line in function.json_log_lines()]
    once = [s for _, s in done if s.get("attempt") == 1 and s["outputs"].get("llmCalls") == 1]
    figures = {
        "delivery": delivery,
        "instances": count,
        "maxParallelSteps": MAX_PARALLEL_STEPS,
        "stubLatencyMs": STUB_LATENCY * 1000,
        "steps": total,
        "wallSeconds": round(wall, 2),
        "idealSeconds": round(ideal, 2),
        "ratioToIdeal": round(wall / ideal, 3),
        "stepsPerSecond": round(len(done) / wall, 1),
        "idealStepsPerSecond": round(total / ideal, 1),
        "stepLatencyMs": rounded(percentiles(end_to_end), 0),  # written READY -> SUCCEEDED
        "executionMs": rounded(percentiles(execution), 1),  # claimed -> SUCCEEDED
        "peakRssMiB": round(usage.peak_rss_bytes / 2**20, 1),
        "cpuSeconds": round(usage.cpu_seconds, 2),
        "cpuCores": round(usage.cpu_seconds / wall, 2),
        "emulatorCpuSeconds": round(emulator_usage.cpu_seconds, 2),
        "succeeded": len(done),
        "succeededExactlyOnce": len(once),
        "unsettledSteps": sum(1 for _, step in steps if step["status"] not in SETTLED),
        "modelCalls": model_calls,
        "artifacts": object_count(bucket, f"flow_runs/{tag}-"),
        "eventsReceived": sum(1 for line in lines if line.get("message") == "event.received"),
        "claimConflicts": sum(1 for line in lines if line.get("message") == "step.claim_conflict"),
        "relay": {"received": relay.received, "pushed": relay.pushed, "failedPushes": relay.failed_pushes,
                  "dropped": relay.dropped},
        "goal": "every step SUCCEEDED exactly once",
    }  # fmt: skip
    figures["exactlyOnce"] = figures["succeededExactlyOnce"] == total == model_calls == figures["artifacts"]
    figures["samplesMs"] = {"endToEndMs": end_to_end, "executionMs": execution}  # for the histogram
    return figures


def write_runs(db: Any, tag: str, runs: int, steps_per_run: int) -> dict[str, datetime]:
    """Write the runs at once (a burst, as an orchestrator starting many flows would); their ids
    and the time each write landed."""
    collection = db.collection("flow_runs")

    def write(i: int) -> tuple[str, datetime]:
        run_id = f"{tag}-{i:03d}"
        steps = {step_id: report_step(f"{run_id}/{step_id}") for step_id in step_ids(steps_per_run)}
        return run_id, collection.document(run_id).set({"status": "RUNNING", "steps": steps}).update_time

    with ThreadPoolExecutor(16) as pool:
        return dict(pool.map(write, range(runs)))


STALL_SECONDS = 60.0


def _settle(db: Any, written: dict[str, datetime]) -> dict[str, dict[str, Any]]:
    """The runs once every step is SUCCEEDED or FAILED, or once nothing has moved for
    ``STALL_SECONDS`` (a lost event: the figure then reports the steps left behind)."""
    ids = list(written)
    latest: dict[str, dict[str, Any]] = {}
    progress, moved = "", time.monotonic()
    while True:
        latest.update(read_runs(db, ids))
        statuses = [s["status"] for run in latest.values() for s in run["steps"].values()]
        if all(status in SETTLED for status in statuses):
            return latest
        if (now := ",".join(statuses)) != progress:
            progress, moved = now, time.monotonic()
        elif time.monotonic() - moved > STALL_SECONDS:
            return latest
        time.sleep(0.5)


# -- 6. duplicate storm ---------------------------------------------------------------------------


def duplicate_storm(stack: BenchStack, deliveries: int = 100, instances: int = 2) -> dict[str, Any]:
    """One event delivered ``deliveries`` times at once, spread over ``instances`` processes (its
    project has no trigger: only these deliveries reach them), against one delivery of the same
    kind of event. The model must be called once; every delivery must be acknowledged (2xx)."""
    from devstack.cloudevents import deliver, document_event_bytes

    project = "bench-storm"
    db = stack.db(project)
    functions = [stack.function(project, f"storm-{i}") for i in range(instances)]

    def fresh_event() -> tuple[str, bytes]:
        run_id = f"storm-{uuid.uuid4().hex[:10]}"
        data = {"status": "RUNNING", "steps": {"report": report_step(run_id)}}
        written = db.collection("flow_runs").document(run_id).set(data)
        return run_id, document_event_bytes(project, run_id, data, when=written.update_time)

    def timed_delivery(url: str, run_id: str, body: bytes) -> tuple[int, float]:
        start = time.perf_counter()
        status = deliver(url, run_id, body, f"{run_id}-write", timeout=120)
        return status, (time.perf_counter() - start) * 1000

    for function in functions:  # warm: each instance has built its clients
        timed_delivery(function.url, *fresh_event())
    single = [timed_delivery(functions[0].url, *fresh_event())[1] for _ in range(5)]
    stack.stub.reset()
    run_id, body = fresh_event()
    gate = threading.Barrier(deliveries)

    def storm(i: int) -> tuple[int, float]:
        gate.wait()
        return timed_delivery(functions[i % len(functions)].url, run_id, body)

    with ThreadPoolExecutor(deliveries) as pool:
        started = time.perf_counter()
        results = list(pool.map(storm, range(deliveries)))
        all_acked = (time.perf_counter() - started) * 1000
    step = read_runs(db, [run_id])[run_id]["steps"]["report"]
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    baseline = statistics.median(single)
    return {
        "deliveries": deliveries,
        "instances": instances,
        "modelCalls": stack.stub.calls(),
        "stepStatus": step["status"],
        "attempt": step.get("attempt"),
        "statuses": statuses,
        "allAckedMs": round(all_acked, 1),
        "ackMs": rounded(percentiles([ms for _, ms in results]), 1),
        "singleDeliveryMs": round(baseline, 1),
        "ratio": round(all_acked / baseline, 3),
        "goal": "1 model call, every delivery acknowledged",
    }


def run_all(progress: Callable[[str], None], profile: bool = False) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with bench_stack("step-storm-emulator", "bench", STUB_LATENCY) as stack:
        progress("perStepOverhead")
        results["perStepOverhead"] = per_step_overhead(stack, profile=profile)
        progress("duplicateStorm")
        results["duplicateStorm"] = duplicate_storm(stack)
        progress("fanoutEmulator")
        results["fanoutEmulator"] = fanout(stack, "emulator")
    with bench_stack("eventarc", "bench", STUB_LATENCY) as stack:
        progress("fanoutEventarc")
        results["fanoutEventarc"] = fanout(stack, "eventarc", instances=2)
    return results
