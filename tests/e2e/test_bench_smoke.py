"""``make bench``'s stack figures at toy scale, so CI catches a broken benchmark: the correctness
each figure reports (exactly once, one model call, every delivery acknowledged) is asserted; the
timings are not."""

from __future__ import annotations

import pytest

from benchmarks import bench_stack
from benchmarks.stack import bench_stack as stack_of

pytestmark = pytest.mark.e2e


def test_the_stack_benchmarks_run_and_report_correct_outcomes() -> None:
    with stack_of("smoke", "bench-smoke", bench_stack.STUB_LATENCY) as stack:
        step = bench_stack.per_step_overhead(stack, rounds=3, warmup=1)
        assert step["rpcsPerStep"]["floor"] == 6  # commit, batch get, upload, begin + get + commit
        assert step["rpcsPerStep"]["warm"] <= step["rpcsPerStep"]["cold"]
        storm = bench_stack.duplicate_storm(stack, deliveries=6)
        assert storm["modelCalls"] == 1 and storm["statuses"] == {"200": 6} and storm["stepStatus"] == "SUCCEEDED"
        serial = bench_stack.fanout(stack, "emulator", runs=2, steps_per_run=3)
        assert serial["exactlyOnce"] and serial["steps"] == 6
    with stack_of("smoke-eventarc", "bench-smoke", bench_stack.STUB_LATENCY) as stack:
        concurrent = bench_stack.fanout(stack, "eventarc", instances=1, runs=2, steps_per_run=3)
        assert concurrent["exactlyOnce"] and concurrent["relay"]["failedPushes"] == 0
