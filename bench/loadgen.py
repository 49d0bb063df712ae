"""An open-loop HTTP/1.1 load generator: arrivals at a fixed rate, whatever the server does.

    .venv/bin/python bench/loadgen.py http://127.0.0.1:8000/updates/metadata/timestamp.json \\
        --rate 250,500,1000,2000 [--duration 10] [--drain 5] [--max-connections 1000] \\
        [--header "Accept: application/json"] [--tokens-file tokens.json]

Request ``i`` is due at ``t0 + i / rate``. Its latency is measured from that *scheduled*
time, not from when it was written, so time spent waiting behind a slow server (for a free
connection, or in the server's queue) counts: no coordinated omission. A closed loop of N
clients that each wait for their answer measures N ÷ throughput instead (issue 12).

Each run is bounded: ``--duration`` seconds of arrivals, then at most ``--drain`` seconds for
the answers still owed; those never answered count as errors (``timeout``). Connections are
kept alive and pooled (one request in flight on each, no pipelining), opened on demand up to
``--max-connections``; beyond that requests wait in the generator, still on the clock.

The generator's own health is measured too: ``generator_lag`` is how late the send loop got
to each request relative to its schedule (before any wait for a connection, which is the
server's doing). A late loop means this process, not the server, set the pace: the result
is flagged ``generator_limited`` and must not be quoted as the server's figure. To keep it
on time on a shared machine, the generator asks for real-time scheduling (SCHED_FIFO; root),
else nice -10: ``generator_priority`` says which it got.

Pure asyncio (``asyncio.Protocol``, no third-party client): the parsing is a few lines, and
a protocol callback per response costs less CPU than a stream reader coroutine, which
matters when the generator shares two cores with the server it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import select
import selectors
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# A run is generator-limited when it sent fewer than 99% of the requests due, or when the send
# loop's own lateness is a large part of what was measured: at p50 or p99, lag above
# LAG_FLOOR_MS and above LAG_SHARE of the latency. Then that latency is the generator's (or
# the shared CPUs'), not the server's. A late loop never hides latency (it is measured from
# the schedule); it adds its own.
LAG_FLOOR_MS = 1.0
LAG_SHARE = 0.5


class _FineTimerSelector(selectors.EpollSelector):
    """epoll with microsecond timeouts. ``epoll_wait`` takes whole milliseconds and Python
    rounds up, so every timed wake-up of the send loop would be up to 1 ms late, which is
    more than nginx takes to answer. Wait on the epoll descriptor with ``select()``, which
    takes microseconds, then collect the events without waiting."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        fd = self.fileno()
        if timeout is not None and timeout > 0 and fd < 1024:  # select()'s FD_SETSIZE
            select.select([fd], [], [], timeout)
            timeout = 0
        return super().select(timeout)


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.SelectorEventLoop(_FineTimerSelector())


def _prefer_this_process() -> str:
    """Ask the kernel to run the generator before the servers it shares the cores with: on a
    busy machine a normal process wakes milliseconds late, and that lateness would be added
    to every latency. Real-time FIFO first (the generator sleeps most of the time; the
    kernel's real-time throttling keeps 5% for everyone else if it ever spins), else nice
    -10, else nothing. Needs root (CAP_SYS_NICE); the result says what was granted."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    except (OSError, AttributeError):
        pass
    else:
        return "SCHED_FIFO 10"
    try:
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    except OSError:
        return "normal priority (not permitted)"
    return "nice -10"


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)  # seconds from scheduled time
    service: list[float] = field(default_factory=list)  # seconds from the actual write
    lags: list[float] = field(default_factory=list)  # seconds the send loop was late
    statuses: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    last_answer: float = 0.0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self, gen: OpenLoop) -> None:
        self.gen = gen
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.scheduled = 0.0
        self.written = 0.0
        self.busy = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def send(self, raw: bytes, scheduled: float) -> None:
        assert self.transport is not None
        self.scheduled = scheduled
        self.busy = True
        self.written = self.gen.clock()
        self.transport.write(raw)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.busy:
            parsed = _parse_response(self.buf)
            if parsed is None:
                return
            status, used, close = parsed
            del self.buf[:used]
            self.busy = False
            self.gen.answered(self, status, close)
            if close:
                return

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.gen.lost(self, exc)


def _parse_response(buf: bytearray) -> tuple[int, int, bool] | None:
    """(status, bytes used, server closes) for one complete response at the start of
    ``buf``, or None while it is incomplete. Content-Length and chunked bodies."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    length = 0
    chunked = close = False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif name == "connection":
            close = "close" in value.lower()
    pos = end + 4
    if status in (204, 304) or 100 <= status < 200:
        return status, pos, close
    if not chunked:
        return (status, pos + length, close) if len(buf) >= pos + length else None
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        pos = eol + 2 + size + 2
        if len(buf) < pos:
            return None
        if size == 0:
            return status, pos, close


class OpenLoop:
    """One run at one rate. ``requests`` are raw HTTP/1.1 requests, used in turn."""

    def __init__(
        self,
        host: str,
        port: int,
        requests: Sequence[bytes],
        rate: float,
        duration: float,
        drain: float,
        max_connections: int,
    ) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.rate, self.duration, self.drain = rate, duration, drain
        self.max_connections = max_connections
        self.loop = asyncio.get_running_loop()
        self.clock = self.loop.time
        self.idle: list[_Connection] = []
        self.conns: set[_Connection] = set()
        self.waiting: deque[tuple[int, float]] = deque()  # due, no connection free yet
        self.open = 0  # connections open or being opened
        self.opened = 0
        self.outstanding = 0  # sent or waiting, not yet answered nor failed
        self.tally = _Tally()
        self.done = asyncio.Event()
        self.sending = True

    def _dispatch(self, i: int, scheduled: float) -> None:
        self.outstanding += 1
        if self.idle:
            self.idle.pop().send(self.requests[i % len(self.requests)], scheduled)
            return
        self.waiting.append((i, scheduled))
        if self.open < self.max_connections:
            self.open += 1
            self.opened += 1
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self), self.host, self.port
            )
        except OSError as exc:
            self.open -= 1
            if self.waiting:  # the request this connection was opened for fails with it
                self.waiting.popleft()
                self._failed(type(exc).__name__)
            return
        self.conns.add(conn)
        self._ready(conn)

    def _ready(self, conn: _Connection) -> None:
        if self.waiting:
            i, scheduled = self.waiting.popleft()
            conn.send(self.requests[i % len(self.requests)], scheduled)
        else:
            self.idle.append(conn)

    def _failed(self, kind: str) -> None:
        self.tally.error(kind)
        self.outstanding -= 1
        if not self.sending and self.outstanding == 0:
            self.done.set()

    def answered(self, conn: _Connection, status: int, close: bool) -> None:
        now = self.clock()
        tally = self.tally
        tally.latencies.append(now - conn.scheduled)
        tally.service.append(now - conn.written)
        key = str(status)
        tally.statuses[key] = tally.statuses.get(key, 0) + 1
        tally.last_answer = now
        self.outstanding -= 1
        if close:
            assert conn.transport is not None
            conn.transport.close()  # connection_lost gives the slot back
        else:
            self._ready(conn)
        if not self.sending and self.outstanding == 0:
            self.done.set()

    def lost(self, conn: _Connection, exc: Exception | None) -> None:
        self.open -= 1
        self.conns.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)
        if conn.busy:
            conn.busy = False
            self._failed(type(exc).__name__ if exc else "connection closed mid-request")
        if self.waiting and self.open < self.max_connections:
            self.open += 1
            self.opened += 1
            self.loop.create_task(self._connect())

    async def run(self) -> dict[str, Any]:
        total = int(self.rate * self.duration)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = self.clock() + 0.05
        i = 0
        lags = self.tally.lags
        while i < total:
            now = self.clock()
            due = t0 + i / self.rate
            while i < total and due <= now:
                lags.append(now - due)
                self._dispatch(i, due)
                i += 1
                due = t0 + i / self.rate
            if i < total:
                await asyncio.sleep(due - self.clock())
        last_send = self.clock()
        self.sending = False
        if self.outstanding:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.done.wait(), self.drain)
        unanswered = self.outstanding
        if unanswered:
            self.tally.errors["timeout"] = self.tally.errors.get("timeout", 0) + unanswered
        for conn in [*self.conns]:
            if conn.transport is not None:
                conn.transport.close()
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        wall = self.clock() - t0
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        return self._report(total, t0, last_send, wall, cpu)

    def _report(
        self, total: int, t0: float, last_send: float, wall: float, cpu: float
    ) -> dict[str, Any]:
        tally = self.tally
        ok = sum(n for s, n in tally.statuses.items() if s.startswith("2") or s == "304")
        errors = {f"status {s}": n for s, n in tally.statuses.items() if not s.startswith("2")}
        errors.pop("status 304", None)
        errors.update(tally.errors)
        lag = percentiles(tally.lags)
        send_window = max(last_send - t0, 1e-9)
        answer_window = max(tally.last_answer - t0, 1e-9)
        sent_rate = len(tally.lags) / max(send_window, self.duration)
        latency = percentiles(tally.latencies)
        reasons = []
        for q in ("p50", "p99"):
            if lag[q] > LAG_FLOOR_MS and lag[q] > LAG_SHARE * latency[q]:
                reasons.append(
                    f"send loop {q} {lag[q]} ms late, over {LAG_SHARE:g} of the {q} latency"
                    f" {latency[q]} ms"
                )
        if sent_rate < 0.99 * self.rate:
            reasons.append(f"sent {sent_rate:.0f}/s of {self.rate:g}/s")
        return {
            "rate": self.rate,
            "duration_s": self.duration,
            "sent": len(tally.lags),
            "ok": ok,
            "errors": dict(sorted(errors.items())),
            "error_count": sum(errors.values()),
            "statuses": dict(sorted(tally.statuses.items())),
            "latency_ms": latency,
            "service_time_ms": percentiles(tally.service),
            "achieved_rate": round(ok / max(answer_window, self.duration), 1),
            "sent_rate": round(sent_rate, 1),
            "connections_opened": self.opened,
            "generator_lag_ms": lag,
            "generator_cpu_percent": round(100 * cpu / max(wall, 1e-9), 1),
            "generator_limited": bool(reasons),
            "generator_limited_because": reasons,
        }


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p90/p99/max in milliseconds (nearest rank); zeros when there are none."""
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return round(ordered[min(last, int(q * len(ordered)))] * 1000, 3)

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": round(ordered[-1] * 1000, 3)}


def build_requests(
    host: str, port: int, path: str, headers: Sequence[str] = (), tokens: Sequence[str] = ()
) -> list[bytes]:
    """Raw GET requests; with ``tokens``, one per token (``Authorization: Token <t>``)."""
    base = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + "".join(f"{h}\r\n" for h in headers)
    if not tokens:
        return [(base + "\r\n").encode("latin-1")]
    return [(base + f"Authorization: Token {t}\r\n\r\n").encode("latin-1") for t in tokens]


async def run_rate(
    host: str,
    port: int,
    requests: Sequence[bytes],
    rate: float,
    duration: float,
    drain: float = 5.0,
    max_connections: int = 1000,
) -> dict[str, Any]:
    return await OpenLoop(host, port, requests, rate, duration, drain, max_connections).run()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="http://host:port/path (plain HTTP/1.1)")
    parser.add_argument("--rate", default="250", help="requests per second, comma-separated")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals")
    parser.add_argument("--drain", type=float, default=5.0, help="seconds to wait after")
    parser.add_argument("--max-connections", type=int, default=1000)
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--tokens-file", help="JSON list of device tokens, used in turn")
    args = parser.parse_args(argv)

    url = urlsplit(args.url)
    if url.scheme != "http" or not url.hostname:
        parser.error("only http://host[:port]/path")
    host, port = url.hostname, url.port or 80
    path = url.path + (f"?{url.query}" if url.query else "") or "/"
    tokens = json.loads(Path(args.tokens_file).read_text()) if args.tokens_file else []
    requests = build_requests(host, port, path, args.header, tokens)
    priority = _prefer_this_process()
    for rate in (float(r) for r in args.rate.split(",") if r):
        with asyncio.Runner(loop_factory=_loop) as runner:
            result = runner.run(
                run_rate(
                    host, port, requests, rate, args.duration, args.drain, args.max_connections
                )
            )
        result["url"] = args.url
        result["generator_priority"] = priority
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
