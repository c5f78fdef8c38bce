"""The benchmark harness runs, and its one non-timing claim holds: a no-op event makes no RPC."""

from __future__ import annotations

from benchmarks.bench_light import counting_connections, noop_event, percentiles


def test_a_noop_event_opens_no_connection() -> None:
    figures = noop_event(rounds=20)
    assert figures["connections"] == 0
    assert set(figures["handlerUs"]) == {"p50", "p90", "p95", "p99"}


def test_the_connection_counter_counts() -> None:
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    with counting_connections() as count, socket.create_connection(server.getsockname()):
        pass
    server.close()
    assert count[0] == 1


def test_percentiles() -> None:
    assert percentiles([float(v) for v in range(1, 101)]) == {"p50": 51.0, "p90": 91.0, "p95": 96.0, "p99": 100.0}
