"""Measuring instruments shared by the benchmarks: percentiles, timers, RPC counters and a sampler
of a process group's memory and CPU. Nothing here asserts a timing: figures are printed and written.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentiles(samples: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p95/p99 of ``samples`` (empty: an empty dict)."""
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p90": at(0.90), "p95": at(0.95), "p99": at(0.99)}


def rounded(figures: dict[str, float], digits: int, scale: float = 1.0) -> dict[str, float]:
    return {key: round(value * scale, digits) for key, value in figures.items()}


def timed_us(fn: Callable[[], Any], rounds: int) -> list[float]:
    """Microseconds per call of ``fn``, one sample per call."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


@contextmanager
def counting_connections() -> Iterator[list[int]]:
    """Counts every outgoing socket connection: an RPC needs one, a no-op must make none."""
    count = [0]
    original = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        count[0] += 1
        return original(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign,assignment]
    try:
        yield count
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


@dataclass
class RpcCount:
    """Requests sent, by kind: gRPC methods (Firestore) and HTTP ``METHOD host`` (GCS)."""

    calls: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str) -> None:
        with self._lock:
            self.calls[kind] = self.calls.get(kind, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> dict[str, int]:
        with self._lock:
            taken, self.calls = self.calls, {}
        return taken


@contextmanager
def counting_rpcs() -> Iterator[RpcCount]:
    """Counts the requests the Firestore (gRPC) and Storage (HTTP) clients send, at the transport:
    one per unary or streaming gRPC call, one per HTTP request. Instruments the libraries' own
    call sites for the duration; our code is not touched."""
    import grpc._channel as channel
    import requests

    count = RpcCount()
    patched: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, wrap: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        patched.append((owner, name, original))
        setattr(owner, name, wrap(original))

    def grpc_call(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            method = self._method
            count.add(method.decode().rsplit("/", 1)[-1] if isinstance(method, bytes) else str(method))
            return original(self, *args, **kwargs)

        return call

    def http_call(original: Any) -> Any:
        def call(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            count.add(f"HTTP {method}")
            return original(self, method, url, *args, **kwargs)

        return call

    # unary calls arrive through api-core's interceptor as ``with_call``, streaming reads as ``__call__``
    for owner, method in (
        (channel._UnaryUnaryMultiCallable, "__call__"),
        (channel._UnaryUnaryMultiCallable, "with_call"),
        (channel._UnaryStreamMultiCallable, "__call__"),
        (channel._SingleThreadedUnaryStreamMultiCallable, "__call__"),
    ):
        patch(owner, method, grpc_call)
    patch(requests.Session, "request", http_call)
    try:
        yield count
    finally:
        for owner, name, original in reversed(patched):
            setattr(owner, name, original)


@dataclass
class GroupUsage:
    peak_rss_bytes: int = 0
    cpu_seconds: float = 0.0
    processes: int = 0


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid:  # fields after the command: state, ppid, pgrp, ...
                members.append(int(entry))
    return members


def _rss_and_cpu(pid: int) -> tuple[int, float] | None:
    """RSS bytes and CPU seconds so far; None once the process is gone (reaped between listing
    the group and reading it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5), from 0 after the name
    rss_pages = int(fields[21])
    return rss_pages * PAGE_BYTES, (utime + stime) / CLOCK_TICKS


class GroupSampler:
    """Samples the summed RSS and CPU time of a process group (a functions-framework server and its
    gunicorn worker) every ``interval`` seconds in a thread; ``usage()`` gives the peak RSS seen and
    the CPU seconds spent inside the ``with`` block: from the first reading for a process already
    in the group on entry, from its start for one that joined later (all its CPU is inside)."""

    def __init__(self, pgids: list[int], interval: float = 0.05) -> None:
        self.pgids, self.interval = pgids, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="group-sampler", daemon=True)
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._peak = 0
        self._pids: set[int] = set()
        self._entered = False

    def _sample(self) -> None:
        rss_total = 0
        for pgid in self.pgids:
            for pid in _group_members(pgid):
                reading = _rss_and_cpu(pid)
                if reading is None:  # gone: its last reading stands, not a zero
                    continue
                rss, cpu = reading
                rss_total += rss
                self._pids.add(pid)
                self._cpu_start.setdefault(pid, cpu if not self._entered else 0.0)
                self._cpu_last[pid] = cpu
        self._peak = max(self._peak, rss_total)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> GroupSampler:
        self._sample()
        self._entered = True
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def usage(self) -> GroupUsage:
        cpu = sum(self._cpu_last[pid] - self._cpu_start[pid] for pid in self._cpu_last)
        return GroupUsage(self._peak, cpu, len(self._pids))
