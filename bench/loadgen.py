"""A small HTTP/1.1 load generator: open loop (fixed schedule) or closed loop (back to back).

Run in its own process (`python -m bench.loadgen ...`), it prints one JSON object. It speaks
just enough HTTP/1.1 for uvicorn (keep-alive, Content-Length bodies) over asyncio protocols on
uvloop, so a request costs it tens of microseconds of CPU; `cpu_s` in the result says how much
it really used. Open-loop latency counts from the moment a request was *scheduled*, not sent,
so a stalled server cannot hide its queueing delay (no coordinated omission).
"""

import argparse
import asyncio
import json
import math
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

REQUEST_TIMEOUT_S = 10.0


class ProtocolError(Exception):
    """The server answered something this client does not parse."""


class Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence Any.
        self.transport: Any = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            response = self._parse()
        except ProtocolError as exc:
            waiter.set_exception(exc)
            return
        if response is not None:
            waiter.set_result(response)

    def _parse(self) -> tuple[int, bytes] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self._buffer[:end]).lower()
        status = int(head[9:12])
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise ProtocolError(f"no Content-Length in {head[:200]!r}")
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else len(head)])
        total = end + 4 + length
        if len(self._buffer) < total:
            return None
        body = bytes(self._buffer[end + 4 : total])
        del self._buffer[:total]
        return status, body

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await asyncio.wait_for(self._waiter, REQUEST_TIMEOUT_S)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections handed out first-in first-out (spreads load over workers)."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self.opened = 0
        self._idle: deque[Connection] = deque()
        self._waiters: deque[asyncio.Future[Connection]] = deque()
        self._replacing: set[asyncio.Task[None]] = set()

    async def _open(self) -> Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Connection, self.host, self.port)
        return conn

    async def fill(self, count: int) -> None:
        count = min(count, self.size)
        conns = await asyncio.gather(*(self._open() for _ in range(count)))
        self.opened += len(conns)
        self._idle.extend(conns)

    async def acquire(self) -> Connection:
        if self._idle:
            return self._idle.popleft()
        if self.opened < self.size:
            self.opened += 1
            try:
                return await self._open()
            except OSError:
                self.opened -= 1
                raise
        waiter: asyncio.Future[Connection] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def release(self, conn: Connection) -> None:
        if conn.closed:
            conn.close()
            self.opened -= 1
            if self._waiters:
                task = asyncio.ensure_future(self._replace(self._waiters.popleft()))
                self._replacing.add(task)
                task.add_done_callback(self._replacing.discard)
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def _replace(self, waiter: asyncio.Future[Connection]) -> None:
        self.opened += 1
        try:
            conn = await self._open()
        except OSError as exc:
            self.opened -= 1
            if not waiter.done():
                waiter.set_exception(exc)
            return
        if waiter.done():
            self.release(conn)
        else:
            waiter.set_result(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class Recorder:
    """Latencies of successful requests, and counts of every outcome, in the measured window."""

    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.accepted = 0
        self.warm_accepted = 0
        self.warm_failed = 0
        self.first_start = math.inf
        self.last_end = 0.0

    def record(
        self, start: float, end: float, status: int | None, error: str | None, measured: bool = True
    ) -> None:
        if not measured:
            if status == self.expect:
                self.warm_accepted += 1
            else:
                self.warm_failed += 1
            return
        self.first_start = min(self.first_start, start)
        self.last_end = max(self.last_end, end)
        if error is not None:
            self.errors[error] += 1
            return
        self.statuses[str(status)] += 1
        if status == self.expect:
            self.accepted += 1
            self.latencies.append(end - start)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        window = max(self.last_end - self.first_start, 1e-9)
        non_ok = sum(n for s, n in self.statuses.items() if s != str(self.expect))
        return {
            "completed": sum(self.statuses.values()) + sum(self.errors.values()),
            "accepted": self.accepted,
            "warmup_accepted": self.warm_accepted,
            "warmup_failed": self.warm_failed,
            "failed": non_ok + sum(self.errors.values()),
            "statuses": dict(self.statuses),
            "errors": dict(self.errors),
            "window_s": round(window, 3),
            "accepted_per_s": round(self.accepted / window, 1),
            "latency_ms": {
                "p50": _ms(percentile(lat, 0.50)),
                "p90": _ms(percentile(lat, 0.90)),
                "p99": _ms(percentile(lat, 0.99)),
                "p999": _ms(percentile(lat, 0.999)),
                "max": _ms(lat[-1] if lat else None),
                "mean": _ms(sum(lat) / len(lat) if lat else None),
            },
        }


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


class Target:
    """Where requests go and how each one is built (request i gets a distinct body)."""

    def __init__(self, url: str, method: str, body: str | None, headers: list[str]) -> None:
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        self.host, _, port = hostport.partition(":")
        self.port = int(port or 80)
        self.path = "/" + path
        self.method = method
        self.body = body
        extra = "".join(f"{h}\r\n" for h in headers)
        self._head = f"{method} {self.path} HTTP/1.1\r\nHost: {hostport}\r\n{extra}"
        self._run = uuid.uuid4().hex[:8]

    def request(self, i: int) -> bytes:
        if self.body is None:
            return f"{self._head}\r\n".encode()
        body = self.body.replace("{i}", str(i)).replace("{run}", self._run).encode()
        head = f"{self._head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        return head.encode() + body


async def _one(pool: Pool, data: bytes, scheduled: float, rec: Recorder, measured: bool) -> None:
    status: int | None = None
    error: str | None = None
    conn: Connection | None = None
    try:
        conn = await pool.acquire()
        status, _ = await conn.request(data)
    except TimeoutError:
        error = "timeout"
        if conn is not None:
            conn.closed = True
    except (OSError, ProtocolError) as exc:
        error = type(exc).__name__
        if conn is not None:
            conn.closed = True
    finally:
        if conn is not None:
            pool.release(conn)
    rec.record(scheduled, time.perf_counter(), status, error, measured)


async def open_loop(
    target: Target, rate: float, duration: float, warmup: float, conns: int, expect: int
) -> dict[str, Any]:
    """Send `rate` requests a second on a fixed schedule; latency from each scheduled time."""
    pool = Pool(target.host, target.port, conns)
    await pool.fill(min(conns, 32))
    rec = Recorder(expect)
    interval = 1.0 / rate
    warm_n = int(warmup * rate)
    total = warm_n + int(duration * rate)
    tasks: set[asyncio.Task[None]] = set()
    max_lag = 0.0
    start = time.perf_counter() + 0.01
    i = 0
    while i < total:
        now = time.perf_counter()
        while i < total and start + i * interval <= now:
            scheduled = start + i * interval
            if i >= warm_n:
                max_lag = max(max_lag, now - scheduled)
            task = asyncio.create_task(_one(pool, target.request(i), scheduled, rec, i >= warm_n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
    if tasks:
        await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT_S + 5)
    pool.close()
    result = rec.summary()
    result.update(
        mode="open",
        offered_per_s=rate,
        sent=total - warm_n,
        warmup_sent=warm_n,
        max_send_lag_ms=round(max_lag * 1000, 3),
        connections_opened=pool.opened,
    )
    return result


async def closed_loop(
    target: Target, conns: int, duration: float, warmup: float, expect: int
) -> dict[str, Any]:
    """`conns` clients, each sending its next request as soon as the last one is answered."""
    pool = Pool(target.host, target.port, conns)
    await pool.fill(conns)
    rec = Recorder(expect)
    counter = iter(range(10**9))
    begin = time.perf_counter()
    measure_from = begin + warmup
    stop_at = measure_from + duration

    async def client() -> None:
        while True:
            now = time.perf_counter()
            if now >= stop_at:
                return
            await _one(pool, target.request(next(counter)), now, rec, now >= measure_from)

    await asyncio.gather(*(client() for _ in range(conns)))
    pool.close()
    result = rec.summary()
    # Throughput over the fixed window, not first-to-last request.
    result["accepted_per_s"] = round(rec.accepted / duration, 1)
    result.update(
        mode="closed",
        connections=conns,
        sent=result["completed"],
        warmup_sent=rec.warm_accepted + rec.warm_failed,
    )
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run one load test as described by the command line; the result as a dict."""
    target = Target(args.url, args.method, args.body, args.header)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if args.rate:
        coro = open_loop(
            target, args.rate, args.duration, args.warmup, args.connections, args.expect
        )
    else:
        coro = closed_loop(target, args.connections, args.duration, args.warmup, args.expect)
    result = _loop_runner()(coro)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    sent = result["sent"] + result["warmup_sent"]
    result.update(
        cpu_s=round(cpu, 3),
        wall_s=round(wall, 3),
        cpu_us_per_request=round(cpu / max(sent, 1) * 1e6, 1),
        cpu_share_of_one_core=round(cpu / wall, 3),
    )
    return result


def _loop_runner() -> Callable[[Any], dict[str, Any]]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run
    return uvloop.run


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--method", default="POST")
    parser.add_argument("--body", help="JSON body; {i} is the request number, {run} a run id")
    parser.add_argument("--header", action="append", default=[], help="'Name: value'")
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s (open loop)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--expect", type=int, default=202, help="the status that counts")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(run(parse_args())))
