"""Real gateway and worker processes for end-to-end tests, stopped by PID when done."""

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import pika
import psutil
import pytest

from services.common.topology import pika_parameters
from tests.support import environment

ROOT = Path(__file__).resolve().parents[2]


class PeakRss:
    """Samples a process's resident size in a thread while the block runs; `.growth` after."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self._proc = psutil.Process(pid)
        self._interval_s = interval_s
        self.baseline = self.peak = self._proc.memory_info().rss
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval_s)

    @property
    def growth(self) -> int:
        return self.peak - self.baseline

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self._thread.join()


# Below Linux's ephemeral range (32768-60999): a port handed out from that range can be taken as
# the source port of any outgoing connection before the server that was meant to bind it does.
_PORTS = range(20000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on, outside the ephemeral range, not handed out before
    by this process."""
    for _ in range(1000):
        port = random.choice(_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its live children (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


# --- readiness: what start_process polls until the process answers ----------------------------

Ready = Callable[[], bool]


def http_ok(url: str, *, accept: Callable[[int], bool] | None = None, timeout: float = 1) -> Ready:
    """Ready once GET `url` answers with a status `accept` takes (by default, 200)."""

    def ready() -> bool:
        try:
            status = httpx.get(url, timeout=timeout).status_code
        except httpx.HTTPError:
            return False
        return accept(status) if accept is not None else status == 200

    return ready


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1) -> Ready:
    """Ready once something accepts a TCP connection on host:port."""

    def ready() -> bool:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            return False

    return ready


def consumers_added(queue: str, amqp_url: str | None = None) -> Ready:
    """Ready once `queue` has more consumers than now: call it before starting the pool."""
    broker = amqp_url or environment.AMQP_URL
    before = consumer_count(queue, broker)
    return lambda: consumer_count(queue, broker) > before


class Service:
    """One process (and its children) started in its own session, logging to a file.

    `args` follow `executable` (this Python unless told); `env` None inherits this one.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: Mapping[str, str] | None,
        log_dir: Path,
        *,
        executable: str = sys.executable,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [executable, *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        """User + system CPU of the process and its live children."""
        return tree_cpu_seconds(self.pid)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, ready: Ready, timeout: float, what: str, step: float = 0.05) -> Self:
        """Poll `ready` until it holds. If the process exits first (RuntimeError), `ready`
        raises, or `timeout` passes (TimeoutError), stop the process and fail with its log's
        tail."""

        def check() -> bool:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"{self.name} exited ({code}):\n{self.log()[-3000:]}")
            return ready()

        try:
            wait_until(check, timeout, what, step)
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"{exc}; {self.name} logged:\n{self.log()[-3000:]}") from None
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the process group, SIGKILL whatever is left after `timeout`."""
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait(5)
        for child in self.children():
            child.kill()
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start_process(
    name: str,
    args: Sequence[str],
    env: Mapping[str, str] | None,
    log_dir: Path,
    *,
    ready: Ready,
    timeout: float,
    what: str | None = None,
    step: float = 0.05,
    executable: str = sys.executable,
) -> Service:
    """Start `executable *args` as a Service logging to log_dir/<name>.log, and return it once
    `ready()` holds (http_ok, port_open, consumers_added, ...). If it exits or `timeout` passes
    first, it is stopped and the error carries the tail of its log. Stop it with `.stop()` or
    `with`."""
    service = Service(name, args, env, log_dir, executable=executable)
    return service.wait_ready(ready, timeout, what or f"{name} to be ready", step)


def run_module(
    module: str, env: Mapping[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """`python -m <module>` from the repository with exactly `env`, to its end (or `timeout`)."""
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_gateway(log_dir: Path, **env: str) -> tuple[Service, str]:
    """A gateway process on a free port, once /readyz says it can accept jobs."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = start_process(
        "gateway",
        ["-m", "services.gateway"],
        environment.service_env(OFFLOAD_GATEWAY_PORT=str(port), **env),
        log_dir,
        ready=http_ok(f"{base}/readyz"),
        timeout=30,
        what="the gateway to be ready",
    )
    return service, base


@dataclass(frozen=True)
class Gateway:
    """A running gateway process and where it answers."""

    service: Service
    base_url: str


def gateway_for_module(factory: pytest.TempPathFactory, **env: str) -> Iterator[Gateway]:
    """A gateway for one module's tests (`yield from` it in a module-scoped fixture)."""
    service, base_url = start_gateway(factory.mktemp("logs"), **env)
    try:
        yield Gateway(service, base_url)
    finally:
        service.stop()


def consumer_count(queue: str, amqp_url: str | None = None) -> int:
    """Consumers of `queue` on `amqp_url` (the test broker unless told)."""
    connection = pika.BlockingConnection(pika_parameters(amqp_url or environment.AMQP_URL))
    try:
        method = connection.channel().queue_declare(queue, passive=True).method
        return int(method.consumer_count)
    finally:
        connection.close()


def start_worker(
    service_name: str,
    queue: str,
    log_dir: Path,
    *,
    concurrency: int = 2,
    name: str | None = None,
    **env: str,
) -> Service:
    """A worker pool process, once it consumes its queue (on OFFLOAD_AMQP_URL if given)."""
    label = name or service_name
    ready = consumers_added(queue, env.get("OFFLOAD_AMQP_URL"))  # counted before the start
    return start_process(
        label,
        [
            "-m",
            f"services.{service_name}",
            "--queues",
            queue,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{label}-{os.getpid()}-{free_port()}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        environment.service_env(**env),
        log_dir,
        ready=ready,
        timeout=60,
        what=f"{label} to consume {queue}",
        step=0.2,
    )
