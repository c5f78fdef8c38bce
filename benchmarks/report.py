"""What ``make bench`` prints and writes: one line per figure (its ratio, its goal, met or not),
the latency histogram (PNG) and the generated results section of docs/benchmarks.md."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

BEGIN, END = "<!-- bench-results:begin -->", "<!-- bench-results:end -->"


def _cold_start(f: dict[str, Any]) -> tuple[str, bool]:
    met = f["ratio"] <= 1.2 and not f["heavyModulesLoaded"]
    return f"ratio {f['ratio']:.2f}: import main {f['mainMs']} ms vs floor {f['floorMs']} ms (goal <= 1.2)", met


def _noop(f: dict[str, Any]) -> tuple[str, bool]:
    h, d = f["handlerUs"], f["decodeUs"]
    text = (
        f"ratio {f['ratioP50']:.1f} at p50: handler p50/p95/p99 {h['p50']}/{h['p95']}/{h['p99']} us vs decode "
        f"{d['p50']}/{d['p95']}/{d['p99']} us; {f['connections']} connections (goal 0)"
    )
    return text, f["connections"] == 0


def _per_step(f: dict[str, Any]) -> tuple[str, bool]:
    rpcs = f["rpcsPerStep"]
    text = (
        f"ratio {f['ratioP50']:.2f} config cold, {f['ratioP50WarmConfig']:.2f} warm: p50 {f['coldConfigMs']['p50']} / "
        f"{f['warmConfigMs']['p50']} ms vs floor {f['floorMs']['p50']} ms; RPCs per step {rpcs['cold']} cold, "
        f"{rpcs['warm']} warm, floor {rpcs['floor']} (goal <= 1.3)"
    )
    return text, f["ratioP50"] <= 1.3


def _llm(f: dict[str, Any]) -> tuple[str, bool]:
    """One provider's figures, or the headline: the provider furthest over its SDK at p95."""
    d = f["directMs"]
    text = (
        f"ratio {f['ratioP50']:.3f} at p50: {f['diffP50Ms']:+} ms p50, {f['diffP95Ms']:+} ms p95 over the direct SDK "
        f"call (p50/p95 {d['p50']}/{d.get('p95', '?')} ms) (goal < 2 ms at p95)"
    )
    if "providers" in f:
        text = f"worst of {len(f['providers'])} providers ({f['provider']}): {text}"
    if not _llm_same_requests(f):
        text += "; ADAPTER AND SDK GOT DIFFERENT ANSWERS: not the same request"
    return text, f["diffP95Ms"] < 2


def _llm_same_requests(f: dict[str, Any]) -> bool:
    """The stubs seed their answer on the request: the same answer to our adapter and to the direct
    call is what shows that both sent the same request."""
    return all(p.get("sameAnswer", True) for p in f.get("providers", {"": f}).values())


def _fanout(f: dict[str, Any]) -> tuple[str, bool]:
    lat = f["stepLatencyMs"]
    text = (
        f"ratio {f['ratioToIdeal']:.2f} to ideal: {f['steps']} steps in {f['wallSeconds']} s vs {f['idealSeconds']} s "
        f"({f['delivery']} delivery, {f['instances']} instance(s)); {f['stepsPerSecond']} steps/s; step latency "
        f"p50/p95/p99 {lat['p50']:.0f}/{lat['p95']:.0f}/{lat['p99']:.0f} ms; peak RSS {f['peakRssMiB']} MiB; "
        f"CPU {f['cpuSeconds']} s; exactly once: {f['exactlyOnce']}"
    )
    if f.get("unsettledSteps"):
        text += f" ({f['unsettledSteps']} steps never settled: a lost event)"
    return text, bool(f["exactlyOnce"])


def _storm(f: dict[str, Any]) -> tuple[str, bool]:
    acked = sum(n for status, n in f["statuses"].items() if status.startswith("2"))
    text = (
        f"ratio {f['ratio']:.2f}: {f['deliveries']} deliveries all acknowledged in {f['allAckedMs']} ms vs one "
        f"delivery {f['singleDeliveryMs']} ms; {f['modelCalls']} model call(s), {acked} acknowledged (goal 1 call)"
    )
    return text, _storm_correct(f)


RUN_SIZE_GOAL = 1.5  # CPU per step at the largest N to the smallest N's; wall time to ideal at the largest N


def _run_size(f: dict[str, Any]) -> tuple[str, bool]:
    """The headline (the largest N against the goals, and the fit) or, for a row of its breakdown,
    one size: judged on its CPU per step against the smallest N's and its correctness."""
    if "bySize" not in f:
        return _run_size_part(f)
    smallest = f["bySize"][str(f["sizes"][0])]
    largest = f["bySize"][str(f["steps"])]
    fit = f["cpuFitMs"]
    text = (
        f"N={f['steps']}: ratio {f['ratioToIdeal']:.2f} to ideal ({largest['wallSeconds']} s vs "
        f"{largest['idealSeconds']} s), CPU/step {largest['cpuMsPerStep']} ms vs {smallest['cpuMsPerStep']} ms at "
        f"N={smallest['steps']} (x{f['cpuGrowth']:.2f}); fit CPU/step = {fit['a']:.1f} + {fit['b']:.3f}·N ms; "
        f"{f['stuckRunning']} steps left RUNNING; exactly once: {f['exactlyOnce']} "
        f"(goal <= {RUN_SIZE_GOAL} both, 0 left behind)"
    )
    met = f["ratioToIdeal"] <= RUN_SIZE_GOAL and f["cpuGrowth"] <= RUN_SIZE_GOAL
    return text + _left_behind(f), met and _run_size_correct(f)


def _run_size_part(f: dict[str, Any]) -> tuple[str, bool]:
    lat, median = f["stepLatencyMs"], f" (median of {f['runs']} runs)" if f.get("runs", 1) > 1 else ""
    text = (
        f"ratio {f['ratioToIdeal']:.2f} to ideal: {f['steps']} steps in {f['wallSeconds']} s vs {f['idealSeconds']} s"
        f"{median}; CPU {f['cpuMsPerStep']} ms/step (x{f['cpuToSmallest']:.2f} the smallest N's); payload "
        f"{f['payloadKBPerStep']} KB/step over {f['events']} events; {f['failedClaimPreconditions']} failed claim "
        f"preconditions ({f['claimsGivenUp']} claims gave up); "
        f"step latency p50/p95/p99 {lat.get('p50', 0):.0f}/{lat.get('p95', 0):.0f}/{lat.get('p99', 0):.0f} ms; "
        f"{f['stuckRunning']} left RUNNING; exactly once: {f['exactlyOnce']}"
    )
    if f.get("finalizeRetries") or f.get("finalizeFailures"):  # what leaves a step RUNNING, when it goes on
        text += f"; finalizes that conflicted past their rounds: {f['finalizeRetries']} retried, "
        text += f"{f['finalizeFailures']} given up"
    return text + _left_behind(f), f["cpuToSmallest"] <= RUN_SIZE_GOAL and _run_size_correct(f)


def _left_behind(f: dict[str, Any]) -> str:
    other = f["unsettledSteps"] - f["stuckRunning"]
    return f" ({other} more steps never settled)" if other else ""


def _run_size_correct(f: dict[str, Any]) -> bool:
    return bool(f["exactlyOnce"]) and f["unsettledSteps"] == 0


def _chain_hop(f: dict[str, Any]) -> tuple[str, bool]:
    from benchmarks.bench_chain import CHAIN_HOP_GOAL

    text = (
        f"ratio {f['ratio']:.2f} net of the emulator's event building ({f['rawRatio']:.2f} raw): median hop cost "
        f"(all but the model) {f['fillerHopMs']} ms in a run with {f['fillers']} settled steps vs "
        f"{f['emptyHopMs']} ms in a run of its own ({f['chain']}-step chains); the emulator's write "
        f"{f['fillerWriteMs']} vs {f['emptyWriteMs']} ms, of it event building {f['fillerEventBuildMs']} vs "
        f"{f['emptyEventBuildMs']} ms; next step claimed {f['fillerStartMs']} vs {f['emptyStartMs']} ms after; "
        f"all SUCCEEDED: {f['allSucceeded']} (goal < {CHAIN_HOP_GOAL})"
    )
    return text, f["ratio"] < CHAIN_HOP_GOAL and bool(f["allSucceeded"])


FANOUTS = ("fanoutEmulator", "fanoutEventarc")
FIGURES: list[tuple[str, str, Callable[[dict[str, Any]], tuple[str, bool]]]] = [
    ("coldStart", "1. cold start", _cold_start),
    ("noopEvent", "2. no-op event", _noop),
    ("perStepOverhead", "3. per-step overhead", _per_step),
    ("llmLayer", "4. LLM layer", _llm),
    ("fanoutEmulator", "5. fan-out, emulator delivery", _fanout),
    ("fanoutEventarc", "5. fan-out, Eventarc delivery", _fanout),
    ("duplicateStorm", "6. duplicate storm", _storm),
    ("runSize", "7. run size", _run_size),
    ("chainHop", "8. chain hop", _chain_hop),
]


# A figure broken down into rows of its own, each judged by the figure's describer: (suffix, figures).
BREAKDOWNS: dict[str, Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]] = {
    "llmLayer": lambda f: list(f.get("providers", {}).items()),
    "runSize": lambda f: [(f"N={n}", f["bySize"][str(n)]) for n in f["sizes"]],
}


def _storm_correct(f: dict[str, Any]) -> bool:
    acked = sum(n for status, n in f["statuses"].items() if status.startswith("2"))
    return bool(f["modelCalls"] == 1 and acked == f["deliveries"] and f["stepStatus"] == "SUCCEEDED")


# Outcomes, not timings: a benchmark that reports one of these broken fails ``make bench``.
CORRECTNESS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "coldStart": lambda f: not f["heavyModulesLoaded"],
    "noopEvent": lambda f: f["connections"] == 0,
    "llmLayer": _llm_same_requests,
    "fanoutEmulator": lambda f: bool(f["exactlyOnce"]),
    "fanoutEventarc": lambda f: bool(f["exactlyOnce"]),
    "duplicateStorm": _storm_correct,
    "runSize": _run_size_correct,
    "chainHop": lambda f: bool(f["allSucceeded"]),
}


def broken(results: dict[str, Any]) -> list[str]:
    """The figures whose outcome (not timing) is wrong: heavy modules loaded, an RPC for a no-op,
    an adapter and its SDK sent different requests, a step not done exactly once (or left
    RUNNING), a duplicate that called the model or was not acknowledged."""
    return [key for key, correct in CORRECTNESS.items() if key in results and not correct(results[key])]


def summary(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(title, text, goal met) for every figure present in ``results``, then for each row of its
    breakdown (``4. LLM layer, openai``...)."""
    rows: list[tuple[str, str, bool]] = []
    for key, title, describe in FIGURES:
        if key not in results:
            continue
        rows.append((title, *describe(results[key])))
        breakdown = BREAKDOWNS.get(key)
        if breakdown is not None:
            rows += [(f"{title}, {name}", *describe(part)) for name, part in breakdown(results[key])]
    return rows


def print_summary(results: dict[str, Any]) -> None:
    for title, text, met in summary(results):
        print(f"{title:<31} {'met ' if met else 'MISS'}  {text}", flush=True)


def histogram(results: dict[str, Any], path: Path) -> bool:
    """Step latency histograms of the fan-out runs, p50/p90/p95/p99 marked; False without matplotlib."""
    samples = {f["delivery"]: f["samplesMs"] for key in FANOUTS if (f := results.get(key))}
    titles = {"executionMs": "claimed -> SUCCEEDED", "endToEndMs": "written READY -> SUCCEEDED"}
    panels = [
        (f"{delivery} delivery: {titles[kind]}", samples[delivery][kind])
        for delivery in samples
        for kind in ("executionMs", "endToEndMs")
    ]
    return _draw(panels, 2, path)


def run_size_histogram(results: dict[str, Any], path: Path) -> bool:
    """The run-size figure's READY -> SUCCEEDED latencies, one panel per N; False without matplotlib
    or without the figure."""
    figure = results.get("runSize")
    if not figure:
        return False
    by_size = figure["bySize"]
    panels = [(f"N = {n}: written READY -> SUCCEEDED", by_size[str(n)]["samplesMs"]) for n in figure["sizes"]]
    return _draw(panels, len(panels), path)


def _draw(panels: list[tuple[str, list[float]]], columns: int, path: Path) -> bool:
    """Histograms in rows of ``columns``, p50/p90/p95/p99 marked, saved to ``path``; False when there
    is nothing to draw or no matplotlib."""
    if not panels:
        return False
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.measure import percentiles

    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(6 * columns, 3.6 * rows), squeeze=False)
    for ax, (title, values) in zip(axes.flat, panels, strict=False):
        ax.hist(values, bins=50, color="#4c72b0")
        for (name, value), style in zip(percentiles(values).items(), ("-", "--", "-.", ":"), strict=True):
            ax.axvline(value, color="#c44e52", linestyle=style, label=f"{name} {value:.0f} ms")
        ax.set_title(f"{title} ({len(values)} steps)")
        ax.set_xlabel("ms")
        ax.set_ylabel("steps")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def results_markdown(results: dict[str, Any], image: str | None, run_size_image: str | None = None) -> str:
    machine = results["machine"]
    lines = [
        f"Generated by `make bench` at {results['at']} on {machine['cpus']} CPUs ({machine.get('cpuModel', '?')}), "
        f"{machine['memoryGiB']} GiB, {machine['platform']}, Python {machine['python']}.",
        "",
        "| figure | goal | result |",
        "|---|---|---|",
    ]
    for title, text, met in summary(results):
        lines.append(f"| {title} | {'met' if met else '**not met**'} | {text} |")
    if image:
        lines += ["", f"![step latency histograms]({image})"]
    if run_size_image:
        lines += ["", f"![run size: step latency per N]({run_size_image})"]
    return "\n".join(lines)


def update_docs(doc: Path, section: str) -> None:
    """Replace the generated section of ``doc`` (between the markers), keeping the prose around it."""
    text = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{doc} has no {BEGIN} ... {END} section")
    doc.write_text(pattern.sub(lambda _: f"{BEGIN}\n{section}\n{END}", text), encoding="utf-8")
