"""``make bench``'s stack and LLM-layer figures at toy scale, so CI catches a broken benchmark: the
correctness each figure reports (exactly once, one model call, every delivery acknowledged, the
same request from our adapter as from the direct SDK call) is asserted; the timings are not."""

from __future__ import annotations

from contextlib import AbstractContextManager

import pytest

from benchmarks import bench_chain, bench_llm, bench_runsize, bench_stack, report
from benchmarks.stack import BenchStack
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


def test_the_llm_layer_benchmark_sends_each_sdk_the_request_our_adapter_sends() -> None:
    figures = bench_llm.llm_layer(rounds=3)
    providers = figures["providers"]
    assert set(providers) == {"gemini", "openai", "openai_compatible", "anthropic"}
    assert {name: f["sameAnswer"] for name, f in providers.items()} == dict.fromkeys(providers, True)
    assert figures["diffP95Ms"] == max(f["diffP95Ms"] for f in providers.values())
    assert figures == providers[figures["provider"]] | {"provider": figures["provider"], "providers": providers}
    assert report.broken({"llmLayer": figures}) == []


def test_the_run_size_benchmark_runs_each_size_exactly_once() -> None:
    def stack() -> AbstractContextManager[BenchStack]:
        return stack_of("smoke-run-size", "bench-smoke", bench_stack.STUB_LATENCY)

    figure = bench_runsize.run_size(stack, (12, 3), measured_steps=6)
    assert figure["sizes"] == [3, 12] and set(figure["bySize"]) == {"3", "12"}
    small, large = figure["bySize"]["3"], figure["bySize"]["12"]
    assert small["runs"] == 2 and large["runs"] == 1  # a size below measured_steps: runs one after another
    for part in (small, large):
        assert part["exactlyOnce"] and part["stuckRunning"] == part["unsettledSteps"] == 0
        assert part["modelCalls"] == part["artifacts"] == part["runs"] * part["steps"] == len(part["samplesMs"])
        assert part["events"] > 0 and part["payloadKBPerStep"] > 0
        assert sum(part["latencyHistogram"]["counts"]) == len(part["samplesMs"])
    assert set(figure["cpuFitMs"]) == {"a", "b"}
    assert report.broken({"runSize": figure}) == []


def test_the_chain_hop_benchmark_runs_its_chains_to_the_end() -> None:
    def stack() -> AbstractContextManager[BenchStack]:
        return stack_of("smoke-chain-hop", "bench-smoke", bench_stack.STUB_LATENCY)

    figure = bench_chain.chain_hop(
        stack, instances=1, shape=bench_chain.Shape(chain=4, fillers=30, repeats=1, writes=3)
    )
    assert figure["chain"] == 4 and figure["fillers"] == 30 and figure["allSucceeded"]
    for kind in figure["byKind"].values():
        assert kind["hops"] == 3 and kind["hopCostMs"]["p50"] > -200 and kind["writeMs"]["p50"] > 0
        assert kind["untriggeredWriteMs"]["p50"] > 0
    assert report.broken({"chainHop": figure}) == []
