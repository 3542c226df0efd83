"""The containers' health checks against real processes, run as Docker runs them.

A loopback server and the gateway for `http`; a worker pool and beat that lose the broker,
get it back and die for `worker` and `beat`; and SIGTERM to a pool in the middle of a task,
as `docker stop` sends it, letting the task finish (Celery's warm shutdown).
"""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.conftest import api, purge_queues
from tests.integration.conftest import (
    job_row,
    queue_depth,
    running_with_progress,
    submit,
    wait_for_job,
)
from tests.support import environment
from tests.support.blogserver import BlogServer
from tests.support.processes import (
    ROOT,
    Service,
    consumer_count,
    free_port,
    start_gateway,
    start_worker,
    wait_until,
)
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration

# The processes started here beat every half second, so a heartbeat is stale after 3 s.
INTERVAL_S = "0.5"
# A check may use 2 s of CPU, and must answer within the images' HEALTHCHECK --timeout (wall
# time is only bounded loosely: this machine's two cores are busy with the processes under test).
CPU_BUDGET_S = 2.0
WALL_BUDGET_S = 5.0


def check(*args: str, **env: str) -> tuple[int, str]:
    """Run the health check like a container's HEALTHCHECK: its exit code and its one line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "services.ops.healthcheck", *args],
        cwd=ROOT,
        env=environment.service_env(OFFLOAD_HEARTBEAT_INTERVAL_S=INTERVAL_S, **env),
        capture_output=True,
        text=True,
        timeout=10,
    )
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    assert cpu < CPU_BUDGET_S and elapsed < WALL_BUDGET_S, (cpu, elapsed, result.stdout)
    assert result.returncode in (0, 1), result.stderr
    line = result.stdout.strip()
    verdict = "healthy: " if result.returncode == 0 else "unhealthy: "
    assert "\n" not in line and line.startswith(verdict), line
    return result.returncode, line


def eventually(expected: int, *args: str, timeout: float, **env: str) -> str:
    """Repeat the check until it exits `expected`; its last line."""
    outcome: list[str] = []

    def settled() -> bool:
        code, line = check(*args, **env)
        outcome[:] = [line]
        return code == expected

    wait_until(settled, timeout, f"`healthcheck {' '.join(args)}` to exit {expected}", step=0.2)
    return outcome[0]


# --- http ----------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)
        status = {"/ok": 200, "/down": 503}.get(self.path, 404)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_http_is_healthy_on_2xx_only(http_server: str) -> None:
    assert check("http", f"{http_server}/ok") == (0, f"healthy: GET {http_server}/ok answered 200")
    assert check("http", f"{http_server}/down") == (
        1,
        f"unhealthy: GET {http_server}/down answered 503",
    )
    code, line = check("http", f"{http_server}/slow", "--timeout", "0.5")
    assert code == 1 and "timed out" in line
    code, line = check("http", f"http://127.0.0.1:{free_port()}/readyz")
    assert code == 1 and "Connection refused" in line, line


@pytest.mark.parametrize("mode", ["http", "worker", "beat"])
def test_no_mode_imports_celery(http_server: str, mode: str) -> None:
    args = ["http", f"{http_server}/ok"] if mode == "http" else [mode]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "services.ops.healthcheck", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert result.stdout.startswith(("healthy: ", "unhealthy: ")), result.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()}
    heavy = {"celery", "kombu", "billiard"} | ({"pydantic"} if mode == "http" else set())
    assert not {name for name in imported if name.split(".")[0] in heavy}


def test_http_against_the_gateway_readyz(platform: None, log_dir: Path) -> None:
    gateway, base_url = start_gateway(log_dir)
    with gateway:
        assert check("http", f"{base_url}/readyz")[0] == 0
    code, line = check("http", f"{base_url}/readyz")
    assert code == 1 and "Connection refused" in line


# --- worker and beat -----------------------------------------------------------------------------


@pytest.fixture
def broker_proxy() -> Iterator[TcpProxy]:
    """A link to the test broker that a test can cut (only its own process goes through it)."""
    broker = urlsplit(environment.AMQP_URL)
    with TcpProxy(broker.port or 5672, broker.hostname or "127.0.0.1") as proxy:
        yield proxy


def through(proxy: TcpProxy) -> str:
    broker = urlsplit(environment.AMQP_URL)
    netloc = f"{broker.username}:{broker.password}@127.0.0.1:{proxy.port}"
    return urlunsplit((broker.scheme, netloc, broker.path, broker.query, ""))


def test_worker_is_healthy_only_while_it_consumes(
    platform: None, log_dir: Path, tmp_path: Path, broker_proxy: TcpProxy
) -> None:
    beat_file = str(tmp_path / "worker.heartbeat")
    worker = start_worker(
        "analyzer",
        "analyzer",
        log_dir,
        concurrency=1,
        OFFLOAD_AMQP_URL=through(broker_proxy),
        OFFLOAD_HEARTBEAT_FILE=beat_file,
        OFFLOAD_HEARTBEAT_INTERVAL_S=INTERVAL_S,
    )
    with worker:
        code, line = check("worker", OFFLOAD_HEARTBEAT_FILE=beat_file)
        assert code == 0, line
        # Beating, not just created: still fresh well past the 3 s limit.
        time.sleep(3.5)
        assert check("worker", OFFLOAD_HEARTBEAT_FILE=beat_file)[0] == 0

        broker_proxy.stop()  # the pool loses the broker: not healthy, however alive
        line = eventually(1, "worker", timeout=10, OFFLOAD_HEARTBEAT_FILE=beat_file)
        assert line == f"unhealthy: no worker heartbeat at {beat_file}"

        broker_proxy.start()  # Celery reconnects by itself, and beats again
        eventually(0, "worker", timeout=30, OFFLOAD_HEARTBEAT_FILE=beat_file)

        # A pool killed outright leaves its file behind; its age gives it away.
        os.killpg(worker.pid, signal.SIGKILL)
        worker.process.wait(5)
        line = eventually(1, "worker", timeout=10, OFFLOAD_HEARTBEAT_FILE=beat_file)
        assert Path(beat_file).exists()
        assert "worker heartbeat at" in line and "s old (limit 3 s)" in line


def test_beat_is_healthy_only_while_it_publishes(
    platform: None, log_dir: Path, tmp_path: Path, broker_proxy: TcpProxy
) -> None:
    beat_file = str(tmp_path / "beat.heartbeat")
    beat = Service(
        "beat",
        ["-m", "services.ops.beat", "--loglevel", "INFO"],
        environment.service_env(
            OFFLOAD_AMQP_URL=through(broker_proxy),
            OFFLOAD_HEARTBEAT_FILE=beat_file,
            OFFLOAD_HEARTBEAT_INTERVAL_S=INTERVAL_S,
            TMPDIR=str(tmp_path),  # its schedule file, apart from a developer's beat
        ),
        log_dir,
    )
    try:
        with beat:
            eventually(0, "beat", timeout=30, OFFLOAD_HEARTBEAT_FILE=beat_file)
            time.sleep(3.5)  # fresh past the 3 s limit: it keeps ticking
            assert check("beat", OFFLOAD_HEARTBEAT_FILE=beat_file)[0] == 0

            broker_proxy.stop()  # its next publish (every second) fails
            eventually(1, "beat", timeout=15, OFFLOAD_HEARTBEAT_FILE=beat_file)

            broker_proxy.start()
            eventually(0, "beat", timeout=30, OFFLOAD_HEARTBEAT_FILE=beat_file)
            assert "pusher.dispatch_due_campaigns" in beat.log()

        assert beat.process.returncode == 0, beat.log()[-3000:]
        line = check("beat", OFFLOAD_HEARTBEAT_FILE=beat_file)[1]
        assert line == f"unhealthy: no beat heartbeat at {beat_file}"
    finally:
        purge_queues()  # what beat published, so no later test's pool receives it


# --- warm shutdown -------------------------------------------------------------------------------


@pytest.fixture
def slow_blogs() -> Iterator[BlogServer]:
    """A WordPress blog answering every request after 0.2 s: a crawl takes a few seconds."""
    with BlogServer([], count=1, latency_s=0.2) as server:
        yield server


def test_sigterm_lets_the_running_task_finish(
    clean: None, log_dir: Path, tmp_path: Path, slow_blogs: BlogServer
) -> None:
    beat_file = str(tmp_path / "worker.heartbeat")
    gateway, base_url = start_gateway(log_dir)
    worker = start_worker(
        "analyzer",
        "analyzer",
        log_dir,
        concurrency=1,
        OFFLOAD_HEARTBEAT_FILE=beat_file,
        OFFLOAD_HEARTBEAT_INTERVAL_S=INTERVAL_S,
    )
    with gateway, worker, api(base_url) as client:
        job_id = submit(client, slow_blogs.url("wp0"))
        wait_for_job(client, job_id, running_with_progress, what="running with progress")
        # What `docker stop` does: SIGTERM to the container's main process only.
        os.kill(worker.pid, signal.SIGTERM)
        wait_until(
            lambda: consumer_count("analyzer") == 0, 10, "the pool to stop consuming", step=0.1
        )
        assert check("worker", OFFLOAD_HEARTBEAT_FILE=beat_file)[0] == 1
        assert worker.process.wait(60) == 0, worker.log()[-3000:]
        job = wait_for_job(client, job_id, timeout=5)

    assert job["status"] == "succeeded", job
    assert job["progress"] == {"done": 30, "total": 30}
    assert job_row(job_id)["attempts"] == 1  # finished by the first delivery, never redelivered
    assert queue_depth("analyzer") == 0
    assert "warm shutdown" in worker.log().lower()
