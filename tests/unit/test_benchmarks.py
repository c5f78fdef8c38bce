"""The benchmark harness's instruments and verdicts (never a timing): a no-op event makes no RPC,
the counters count, the relay delivers like Eventarc, a figure's goal is judged as documented."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from benchmarks import report
from benchmarks.bench_light import _import_tree, noop_event
from benchmarks.eventarc_relay import EventarcRelay
from benchmarks.measure import GroupSampler, counting_connections, percentiles
from devstack.services import LOOPBACK_OPENER, free_port, wait_until


def test_a_noop_event_opens_no_connection() -> None:
    figures = noop_event(rounds=20)
    assert figures["connections"] == 0
    assert set(figures["handlerUs"]) == {"p50", "p90", "p95", "p99"}


def test_the_connection_counter_counts() -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with counting_connections() as count, socket.create_connection(server.getsockname()):
        pass
    server.close()
    assert count[0] == 1


def test_percentiles() -> None:
    assert percentiles([float(v) for v in range(1, 101)]) == {"p50": 51.0, "p90": 91.0, "p95": 96.0, "p99": 100.0}
    assert percentiles([]) == {}


def test_the_import_tree_knows_who_imported_whom() -> None:
    tree = _import_tree("import json")
    names = [name for name, _, _ in tree]
    decoder = tree[names.index("json.decoder")]
    assert decoder[2] is not None and tree[decoder[2]][0] == "json"
    assert tree[names.index("json")][2] is None  # imported by the statement itself


def test_the_group_sampler_sees_a_process_group_use_memory_and_cpu() -> None:
    import subprocess
    import sys

    burn = "import time; x = bytearray(64 << 20); t = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    child = subprocess.Popen([sys.executable, "-c", burn], start_new_session=True)
    with GroupSampler([child.pid], interval=0.01) as sampler:
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped: the last reading sees it all
    child.wait()
    usage = sampler.usage()
    assert usage.processes == 1
    assert usage.peak_rss_bytes > 64 << 20
    assert usage.cpu_seconds > 0.1


class _Target(BaseHTTPRequestHandler):
    """Answers 500 to the first ``fail_first`` pushes, then 200; records what it got."""

    protocol_version = "HTTP/1.1"
    got: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    fail_first: ClassVar[int] = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).got.append((dict(self.headers.items()), body))
        status = 500 if len(type(self).got) <= type(self).fail_first else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_the_relay_acknowledges_at_once_forwards_untouched_and_retries_failures() -> None:
    _Target.got, _Target.fail_first = [], 1
    target = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    port = free_port()
    url = f"http://127.0.0.1:{target.server_address[1]}"
    with EventarcRelay(port, [url], concurrency=2, retry_seconds=0.05) as relay:
        import urllib.request

        headers = {"ce-id": "e1", "ce-type": "t", "Content-Type": "application/protobuf", "X-Other": "dropped"}
        request = urllib.request.Request(f"http://127.0.0.1:{port}/p", data=b"\x01\x02", headers=headers)
        with LOOPBACK_OPENER.open(request, timeout=10) as response:
            assert response.status == 204
        wait_until(lambda: relay.pushed == 1 and relay.idle(), 10, what="the relay to push")
    target.shutdown()
    target.server_close()
    assert relay.received == 1 and relay.failed_pushes == 1 and relay.dropped == 0
    assert relay.forwarded_bytes == 2  # the body of the push that got through, not of the failed one
    assert len(_Target.got) == 2  # the failure was retried
    headers, body = _Target.got[-1]
    forwarded = {name.lower(): value for name, value in headers.items()}
    assert body == b"\x01\x02"
    assert forwarded["ce-id"] == "e1" and forwarded["content-type"] == "application/protobuf"
    assert "x-other" not in forwarded


def _results(**overrides: Any) -> dict[str, Any]:
    ms = {"p50": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0}
    fanout = {
        "ratioToIdeal": 1.5, "steps": 10, "wallSeconds": 3.0, "idealSeconds": 2.0, "delivery": "emulator",
        "instances": 1, "stepsPerSecond": 3.3, "stepLatencyMs": ms, "peakRssMiB": 100.0, "cpuSeconds": 1.0,
        "exactlyOnce": True,
    }  # fmt: skip
    results = {
        "machine": {"cpus": 2, "memoryGiB": 8.0, "platform": "Linux", "python": "3.11.7"},
        "at": "2026-11-22T00:00:00+00:00",
        "coldStart": {"ratio": 1.1, "mainMs": 330.0, "floorMs": 300.0, "heavyModulesLoaded": []},
        "noopEvent": {"ratioP50": 10.0, "handlerUs": ms, "decodeUs": ms, "connections": 0},
        "perStepOverhead": {"ratioP50": 1.2, "ratioP50WarmConfig": 1.0, "coldConfigMs": ms, "warmConfigMs": ms,
                            "floorMs": ms, "rpcsPerStep": {"cold": 7, "warm": 5, "floor": 6}},
        "llmLayer": {"ratioP50": 1.05, "diffP50Ms": 0.2, "diffP95Ms": 0.5, "directMs": ms},
        "fanoutEmulator": fanout,
        "duplicateStorm": {"ratio": 1.1, "deliveries": 100, "allAckedMs": 300.0, "singleDeliveryMs": 270.0,
                           "modelCalls": 1, "statuses": {"200": 100}, "stepStatus": "SUCCEEDED"},
    }  # fmt: skip
    for key, value in overrides.items():
        results[key] = results.get(key, {}) | value
    return results


def test_every_figure_is_judged_against_its_goal() -> None:
    verdicts = {title: met for title, _, met in report.summary(_results())}
    assert all(verdicts.values()) and len(verdicts) == 6


@pytest.mark.parametrize(
    ("figure", "change"),
    [
        ("coldStart", {"ratio": 1.21}),
        ("coldStart", {"heavyModulesLoaded": ["google.genai"]}),
        ("noopEvent", {"connections": 1}),
        ("perStepOverhead", {"ratioP50": 1.31}),
        ("llmLayer", {"diffP95Ms": 2.0}),
        ("fanoutEmulator", {"exactlyOnce": False}),
        ("duplicateStorm", {"modelCalls": 2}),
        ("duplicateStorm", {"statuses": {"200": 99, "500": 1}}),
    ],
)
def test_a_figure_that_misses_its_goal_says_so(figure: str, change: dict[str, Any]) -> None:
    missed = [title for title, _, met in report.summary(_results(**{figure: change})) if not met]
    assert len(missed) == 1


def test_only_broken_outcomes_fail_the_run_never_a_timing() -> None:
    assert report.broken(_results()) == []
    assert report.broken(_results(coldStart={"ratio": 5.0}, perStepOverhead={"ratioP50": 9.0})) == []
    assert report.broken(_results(fanoutEmulator={"exactlyOnce": False})) == ["fanoutEmulator"]
    assert report.broken(_results(noopEvent={"connections": 2})) == ["noopEvent"]


def test_the_docs_section_is_replaced_and_the_prose_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Prose\n\n{report.BEGIN}\nSTALE-SECTION\n{report.END}\n\nmore prose\n")
    report.update_docs(doc, report.results_markdown(_results(), "img/x.png"))
    text = doc.read_text()
    assert text.startswith("# Prose\n") and text.endswith("more prose\n") and "STALE-SECTION" not in text
    assert "| 1. cold start | met |" in text and "![step latency histograms](img/x.png)" in text


def test_the_relay_waits_for_retries_before_calling_itself_idle() -> None:
    _Target.got, _Target.fail_first = [], 2
    target = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    relay = EventarcRelay(free_port(), [f"http://127.0.0.1:{target.server_address[1]}"], retry_seconds=0.2)
    with relay:
        relay.accept({"ce-id": "e2"}, json.dumps({}).encode())
        time.sleep(0.1)  # the first push has failed, its retry is waiting on a timer
        assert not relay.idle()
        wait_until(relay.idle, 10, what="the relay to finish")
    target.shutdown()
    target.server_close()
    assert relay.pushed == 1 and relay.failed_pushes == 2


def test_the_llm_layer_is_judged_per_provider_and_a_different_request_is_broken() -> None:
    ms = {"p50": 1.0, "p90": 1.0, "p95": 1.0, "p99": 1.0}
    part = {"ratioP50": 1.0, "diffP50Ms": 0.1, "diffP95Ms": 0.2, "directMs": ms, "oursMs": ms, "sameAnswer": True}
    slow = part | {"diffP95Ms": 2.5}
    layer = slow | {"provider": "openai", "providers": {"gemini": part, "openai": slow}}
    rows = {title: met for title, _, met in report.summary(_results(llmLayer=layer))}
    assert {t: m for t, m in rows.items() if "LLM layer" in t} == {
        "4. LLM layer": False,
        "4. LLM layer, gemini": True,
        "4. LLM layer, openai": False,
    }
    assert report.broken(_results(llmLayer=layer)) == []  # a timing never fails the run
    wrong = layer | {"providers": {"gemini": part | {"sameAnswer": False}, "openai": slow}}
    assert report.broken(_results(llmLayer=wrong)) == ["llmLayer"]


def _size(steps: int, cpu_ms: float, ratio: float = 1.2, **overrides: Any) -> dict[str, Any]:
    """One size of the run-size figure, as bench_runsize.one_run reports it."""
    ms = {"p50": 300.0, "p90": 400.0, "p95": 450.0, "p99": 500.0}
    part = {
        "steps": steps, "runs": 1, "wallSeconds": round(ratio * 0.2, 2), "idealSeconds": 0.2, "ratioToIdeal": ratio,
        "cpuMsPerStep": cpu_ms, "payloadKBPerStep": 10.0, "events": 7, "failedClaimPreconditions": 0,
        "claimsGivenUp": 0, "stepLatencyMs": ms, "stuckRunning": 0, "unsettledSteps": 0, "exactlyOnce": True,
    }  # fmt: skip
    return part | overrides


def _run_size(*parts: dict[str, Any]) -> dict[str, Any]:
    from benchmarks.bench_runsize import summarize

    return summarize({str(part["steps"]): part for part in parts}, instances=2, seconds=60.0)


@pytest.mark.parametrize(
    ("xs", "ys", "line"),
    [
        ([10, 100, 500], [6.5, 20.0, 80.0], (5.0, 0.15)),  # exactly a + b·N
        ([10, 100, 500], [12.0, 12.0, 12.0], (12.0, 0.0)),  # flat: the cost per step does not grow
        ([10, 10], [4.0, 6.0], (5.0, 0.0)),  # one size: its mean
    ],
)
def test_the_cpu_per_step_is_fitted_by_least_squares(
    xs: list[float], ys: list[float], line: tuple[float, float]
) -> None:
    from benchmarks.bench_runsize import fit_line

    assert fit_line(xs, ys) == pytest.approx(line)


def test_the_fit_is_the_least_squares_line_through_noisy_points() -> None:
    from benchmarks.bench_runsize import fit_line

    a, b = fit_line([0, 1, 2], [0.0, 2.0, 1.0])  # residuals -0.5, +1, -0.5 sum to zero: the least-squares line
    assert (a, b) == pytest.approx((0.5, 0.5))
    with pytest.raises(ValueError, match="as many"):
        fit_line([1, 2], [1.0])


def test_the_latency_histogram_counts_every_step_in_equal_bins() -> None:
    from benchmarks.bench_runsize import histogram

    counts = histogram([0.0, 5.0, 10.0, 99.0, 100.0], bins=10)
    assert counts == {"binMs": 10, "counts": [2, 1, 0, 0, 0, 0, 0, 0, 0, 2]}
    assert histogram([], bins=3) == {"binMs": 1, "counts": [0, 0, 0]}


def test_the_run_size_figure_compares_each_size_to_the_smallest_and_fits_the_growth() -> None:
    figure = _run_size(_size(500, 80.0, ratio=5.0), _size(10, 6.5), _size(100, 20.0, ratio=2.0))
    assert figure["sizes"] == [10, 100, 500] and figure["steps"] == 500
    assert figure["cpuGrowth"] == pytest.approx(80.0 / 6.5, abs=0.01) and figure["ratioToIdeal"] == 5.0
    assert [figure["bySize"][n]["cpuToSmallest"] for n in ("10", "100", "500")] == [1.0, 3.08, 12.31]
    assert figure["cpuFitMs"] == {"a": 5.0, "b": 0.15}
    assert figure["exactlyOnce"] and figure["stuckRunning"] == 0


def _verdicts(figure: dict[str, Any]) -> dict[str, bool]:
    return {title: met for title, _, met in report.summary({"runSize": figure})}


def test_the_run_size_figure_meets_its_goals_when_a_step_costs_the_same_at_every_size() -> None:
    figure = _run_size(_size(10, 10.0, ratio=1.4, runs=10), _size(100, 11.0), _size(500, 14.0, ratio=1.45))
    assert _verdicts(figure) == dict.fromkeys(
        ["7. run size", "7. run size, N=10", "7. run size, N=100", "7. run size, N=500"], True
    )
    [(_, headline, _), *rows] = report.summary({"runSize": figure})
    assert "N=500: ratio 1.45 to ideal" in headline and "fit CPU/step = " in headline and "x1.40" in headline
    assert "N=10" in rows[0][0] and "(median of 10 runs)" in rows[0][1] and "payload 10.0 KB/step" in rows[0][1]
    assert "median" not in rows[1][1] and "finalizes" not in rows[2][1]
    assert report.broken({"runSize": figure}) == []


@pytest.mark.parametrize(
    ("largest", "missed"),
    [
        (_size(500, 16.0, ratio=1.2), ["7. run size", "7. run size, N=500"]),  # CPU/step x1.6 the smallest N's
        (_size(500, 14.0, ratio=1.6), ["7. run size"]),  # wall 1.6x ideal: judged at the largest N only
        (_size(500, 80.0, ratio=5.0), ["7. run size", "7. run size, N=500"]),  # the baseline
    ],
)
def test_a_run_size_that_misses_its_goals_says_so_but_never_fails_the_run(
    largest: dict[str, Any], missed: list[str]
) -> None:
    figure = _run_size(_size(10, 10.0, ratio=3.0), _size(100, 11.0), largest)
    assert [title for title, met in _verdicts(figure).items() if not met] == missed
    assert report.broken({"runSize": figure}) == []  # a ratio is a goal, not a broken outcome


@pytest.mark.parametrize(
    "change",
    [
        # left RUNNING after finalizes that gave up
        {"stuckRunning": 32, "unsettledSteps": 32, "exactlyOnce": False, "finalizeRetries": 90, "finalizeFailures": 32},
        {"unsettledSteps": 3, "exactlyOnce": False},  # left READY after a claim gave up
        {"exactlyOnce": False},  # a step ran twice
    ],
)
def test_a_step_left_behind_or_not_done_exactly_once_is_broken(change: dict[str, Any]) -> None:
    figure = _run_size(_size(10, 10.0), _size(100, 11.0), _size(500, 12.0, **change))
    assert report.broken({"runSize": figure}) == ["runSize"]
    assert _verdicts(figure)["7. run size"] is False and _verdicts(figure)["7. run size, N=500"] is False
    [headline, *_, row] = [text for _, text, _ in report.summary({"runSize": figure})]
    assert f"{change.get('stuckRunning', 0)} steps left RUNNING" in headline and "exactly once: False" in row
    assert ("more steps never settled" in row) == (change.get("unsettledSteps", 0) > change.get("stuckRunning", 0))
    assert ("finalizes that conflicted past their rounds: 90 retried, 32 given up" in row) == (
        "finalizeFailures" in change
    )


def test_the_run_size_histogram_is_linked_from_the_results() -> None:
    """(It is drawn by make bench, which installs matplotlib, the bench extra; make test does not.)"""
    figure = _run_size(*(_size(n, 10.0, samplesMs=[250.0, 300.0, 900.0]) for n in (10, 100, 500)))
    text = report.results_markdown(_results() | {"runSize": figure}, None, "img/sizes.png")
    assert "| 7. run size | met |" in text and "| 7. run size, N=500 | met |" in text
    assert "![run size: step latency per N](img/sizes.png)" in text


def _chain_run(gaps_ms: list[float], starts_ms: list[float]) -> dict[str, dict[str, Any]]:
    """A chain whose step i finishes ``gaps_ms[i-1]`` after step i-1 and starts ``starts_ms[i-1]`` after it."""
    from datetime import UTC, datetime, timedelta

    t = datetime(2026, 11, 26, tzinfo=UTC)
    steps = {"c00": {"status": "SUCCEEDED", "startedAt": t, "finishedAt": t}}
    for i, (gap, start) in enumerate(zip(gaps_ms, starts_ms, strict=True), 1):
        before = steps[f"c{i - 1:02d}"]["finishedAt"]
        steps[f"c{i:02d}"] = {
            "status": "SUCCEEDED",
            "startedAt": before + timedelta(milliseconds=start),
            "finishedAt": before + timedelta(milliseconds=gap),
        }
    return steps


def test_a_chain_hop_costs_what_it_adds_beyond_the_model_and_starts_when_claimed() -> None:
    from benchmarks.bench_chain import hop_costs_ms, starts_ms

    steps = _chain_run([230.0, 260.0], [1.0, 4.0])
    assert [round(c, 3) for c in hop_costs_ms(steps, chain=3)] == [30.0, 60.0]  # the stub answers in 200 ms
    assert [round(s, 3) for s in starts_ms(steps, chain=3)] == [1.0, 4.0]
    del steps["c02"]["startedAt"], steps["c01"]["finishedAt"]  # hops that did not happen are left out
    assert hop_costs_ms(steps, chain=3) == [] and [round(s, 3) for s in starts_ms(steps, chain=3)] == [1.0]


@pytest.mark.parametrize(("filler_ms", "met"), [(49.0, True), (51.0, False)])
def test_the_chain_hop_figure_compares_the_hop_among_fillers_to_the_hop_alone_net_of_event_building(
    filler_ms: float, met: bool
) -> None:
    from benchmarks.bench_chain import summarize

    def kind(fillers: int, hop: float, ok: bool = True) -> dict[str, Any]:
        ms = {"hopCostMs": {"p50": hop}, "startMs": {"p50": 1.0}, "writeMs": {"p50": 5.0 + fillers / 40}}
        ms |= {"untriggeredWriteMs": {"p50": 6.0 + fillers / 480}}
        return {"fillers": fillers, "hops": 38, **ms, "allSucceeded": ok}

    figure = summarize({"0": kind(0, 20.0), "480": kind(480, filler_ms)}, seconds=30.0)
    # Event building: 17 - 7 = 10 ms among the fillers; none alone (5 ms triggered, 6 untriggered).
    assert figure["fillerEventBuildMs"] == 10.0 and figure["emptyEventBuildMs"] == 0.0
    assert figure["ratio"] == round((filler_ms - 10.0) / 20.0, 2) and figure["fillers"] == 480
    assert figure["rawRatio"] == round(filler_ms / 20.0, 2)  # printed, not judged
    [(title, text, judged)] = report.summary({"chainHop": figure})
    assert title == "8. chain hop" and judged is met and report.broken(_results(chainHop=figure)) == []
    assert f"({figure['rawRatio']:.2f} raw)" in text
    stuck = summarize({"0": kind(0, 20.0), "480": kind(480, 21.0, ok=False)}, seconds=30.0)
    assert report.broken(_results(chainHop=stuck)) == ["chainHop"]
