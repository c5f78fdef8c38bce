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
        results[key] = results[key] | value
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
