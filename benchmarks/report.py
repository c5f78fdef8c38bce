"""What ``make bench`` prints and writes: one line per figure (its ratio, its goal, met or not),
the latency histogram (PNG) and the generated results section of docs/benchmarks.md."""

from __future__ import annotations

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


FANOUTS = ("fanoutEmulator", "fanoutEventarc")
FIGURES: list[tuple[str, str, Callable[[dict[str, Any]], tuple[str, bool]]]] = [
    ("coldStart", "1. cold start", _cold_start),
    ("noopEvent", "2. no-op event", _noop),
    ("perStepOverhead", "3. per-step overhead", _per_step),
    ("llmLayer", "4. LLM layer", _llm),
    ("fanoutEmulator", "5. fan-out, emulator delivery", _fanout),
    ("fanoutEventarc", "5. fan-out, Eventarc delivery", _fanout),
    ("duplicateStorm", "6. duplicate storm", _storm),
]


# A figure broken down into rows of its own, each judged by the figure's describer: (suffix, figures).
BREAKDOWNS: dict[str, Callable[[dict[str, Any]], list[tuple[str, dict[str, Any]]]]] = {
    "llmLayer": lambda f: list(f.get("providers", {}).items()),
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
}


def broken(results: dict[str, Any]) -> list[str]:
    """The figures whose outcome (not timing) is wrong: heavy modules loaded, an RPC for a no-op,
    an adapter and its SDK sent different requests, a step not done exactly once, a duplicate that
    called the model or was not acknowledged."""
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
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from benchmarks.measure import percentiles

    rows = [(delivery, kind) for delivery in samples for kind in ("executionMs", "endToEndMs")]
    fig, axes = plt.subplots(len(rows) // 2, 2, figsize=(12, 3.6 * (len(rows) // 2)), squeeze=False)
    titles = {"executionMs": "claimed -> SUCCEEDED", "endToEndMs": "written READY -> SUCCEEDED"}
    for ax, (delivery, kind) in zip(axes.flat, rows, strict=True):
        values = samples[delivery][kind]
        ax.hist(values, bins=50, color="#4c72b0")
        for (name, value), style in zip(percentiles(values).items(), ("-", "--", "-.", ":"), strict=True):
            ax.axvline(value, color="#c44e52", linestyle=style, label=f"{name} {value:.0f} ms")
        ax.set_title(f"{delivery} delivery: {titles[kind]} ({len(values)} steps)")
        ax.set_xlabel("ms")
        ax.set_ylabel("steps")
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def results_markdown(results: dict[str, Any], image: str | None) -> str:
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
    return "\n".join(lines)


def update_docs(doc: Path, section: str) -> None:
    """Replace the generated section of ``doc`` (between the markers), keeping the prose around it."""
    text = doc.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{doc} has no {BEGIN} ... {END} section")
    doc.write_text(pattern.sub(lambda _: f"{BEGIN}\n{section}\n{END}", text), encoding="utf-8")
