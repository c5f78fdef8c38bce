"""``make bench``: run the benchmarks and print each figure against its same-run baseline.

``python -m benchmarks [--only light|llm|stack|runsize] [--no-docs]``: ``light`` needs no emulator
(cold start, no-op event, LLM layer), ``llm`` is the LLM layer alone (each adapter against its SDK,
~15 s), ``stack`` runs on the local stack (per-step overhead, fan-out, duplicate storm, run size),
``runsize`` is the run-size figure alone (~70 s). Results go to ``.devstack/bench-results.json``;
with all parts run (and unless ``--no-docs``), the histograms ``docs/img/step-latency.png`` and
``docs/img/run-size-latency.png``, the profiles in ``docs/profiles/`` and the results section of
``docs/benchmarks.md`` are regenerated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime
from typing import Any

from benchmarks import report
from benchmarks.measure import ROOT

RESULTS = ROOT / ".devstack" / "bench-results.json"
DOC = ROOT / "docs" / "benchmarks.md"
IMAGE = "img/step-latency.png"
RUN_SIZE_IMAGE = "img/run-size-latency.png"


def machine() -> dict[str, Any]:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    model = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), platform.processor()
    )
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpuModel": model,
        "memoryGiB": round(memory, 1),
    }


def _cpuinfo() -> list[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return info.read().splitlines()
    except OSError:
        return []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("light", "llm", "stack", "runsize"), help="run one part only")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"machine": machine(), "at": datetime.now(UTC).isoformat(timespec="seconds")}

    def progress(name: str) -> None:
        print(f"running {name} ...", file=sys.stderr, flush=True)

    if args.only in (None, "light", "llm"):
        from benchmarks.bench_light import cold_start, noop_event
        from benchmarks.bench_llm import llm_layer

        light = (("coldStart", cold_start), ("noopEvent", noop_event), ("llmLayer", llm_layer))
        for name, bench in light[2:] if args.only == "llm" else light:
            progress(name)
            results[name] = bench()
    from benchmarks import profiles

    profile = args.only is None and not args.no_docs and profiles.available()
    if args.only in (None, "stack"):
        from benchmarks.bench_stack import run_all

        results |= run_all(progress, profile=profile)
    if args.only in (None, "stack", "runsize"):
        from benchmarks.bench_runsize import run_size
        from benchmarks.bench_stack import STUB_LATENCY
        from benchmarks.stack import bench_stack

        progress("runSize")
        results["runSize"] = run_size(lambda: bench_stack("run-size", "bench", STUB_LATENCY))
        from benchmarks.bench_chain import chain_hop

        progress("chainHop")
        results["chainHop"] = chain_hop(lambda: bench_stack("chain-hop", "bench", STUB_LATENCY))
    if profile:
        progress("coldStartProfile")
        profiles.cold_start_profile()
    print()
    report.print_summary(results)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nall figures: {RESULTS.relative_to(ROOT)}")
    if args.only is None and not args.no_docs:
        drawn = report.histogram(results, DOC.parent / IMAGE)
        drawn_sizes = report.run_size_histogram(results, DOC.parent / RUN_SIZE_IMAGE)
        section = report.results_markdown(results, IMAGE if drawn else None, RUN_SIZE_IMAGE if drawn_sizes else None)
        report.update_docs(DOC, section)
        images = [f"docs/{image}" for image, ok in ((IMAGE, drawn), (RUN_SIZE_IMAGE, drawn_sizes)) if ok]
        print(f"results section: {DOC.relative_to(ROOT)}" + (f", histograms: {', '.join(images)}" if images else ""))
    if profile:
        print(f"profiles: {profiles.PROFILES.relative_to(ROOT)}/")
    failed = report.broken(results)
    if failed:
        print(f"\nBROKEN OUTCOME (not a timing): {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
