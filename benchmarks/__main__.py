"""``make bench``: run the benchmarks and print each figure against its same-run baseline."""

from __future__ import annotations

import json
import platform
import sys
from datetime import UTC, datetime

from benchmarks.bench_light import ROOT, cold_start, llm_layer, noop_event


def main() -> int:
    results = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": __import__("os").cpu_count(),
        },
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "coldStart": cold_start(),
        "noopEvent": noop_event(),
        "llmLayer": llm_layer(),
    }
    for name, figures in results.items():
        print(f"{name}: {json.dumps(figures)}", flush=True)
    out = ROOT / ".devstack" / "bench-results.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"written to {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
