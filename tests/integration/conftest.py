"""Reliability tests: real gateway and analyzer processes that the tests starve, kill and cut off.

Each module gets its own gateway; workers are started per test (many tests kill or restart
them) through the `workers` factory, which stops every process it started, by process group.
"""

import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pika
import psutil
import psycopg
import pytest
from psycopg.rows import dict_row

from services.common import topology
from services.common.config import ServiceSettings
from services.common.topology import pika_parameters
from tests.conftest import purge_queues
from tests.support import environment
from tests.support.processes import (
    Service,
    consumer_count,
    start_gateway,
    start_worker,
    wait_until,
)

TERMINAL = ("succeeded", "failed", "cancelled")
ANALYZER = topology.queue_named("analyzer")


@dataclass
class Gateway:
    service: Service
    base_url: str


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module's processes log (kept by pytest for a failed run's post-mortem)."""
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="module")
def gateway(platform: None, log_dir: Path) -> Iterator[Gateway]:
    """A gateway talking straight to the test broker, shared by one module's tests."""
    purge_queues()
    service, base_url = start_gateway(log_dir)
    try:
        yield Gateway(service, base_url)
    finally:
        service.stop()


WorkerFactory = Callable[..., Service]


@pytest.fixture
def workers(platform: None, log_dir: Path) -> Iterator[WorkerFactory]:
    """Start analyzer pools (`workers(concurrency=1, OFFLOAD_X="y")`); all stopped afterwards."""
    no_stray_consumers()
    started: list[Service] = []

    def start(concurrency: int = 1, **env: str) -> Service:
        name = f"analyzer-{len(started) + 1}-{time.monotonic_ns()}"
        service = start_worker(
            "analyzer", "analyzer", log_dir, concurrency=concurrency, name=name, **env
        )
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


def no_stray_consumers(timeout: float = 5) -> None:
    """Fail fast when a worker these tests did not start consumes the test queue."""
    deadline = time.monotonic() + timeout
    while (count := consumer_count(ANALYZER.name)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if count:
        pytest.fail(
            f"{count} consumer(s) not started by this test already consume {ANALYZER.name!r} "
            f"at {environment.AMQP_URL} (a leftover worker, or another suite running): stop "
            "them or give this run its own OFFLOAD_TEST_NAMESPACE"
        )


def settings() -> ServiceSettings:
    """The test servers as a service would see them (for deadletters.redrive and Celery)."""
    return ServiceSettings(
        amqp_url=environment.AMQP_URL,
        redis_url=environment.REDIS_URL,
        database_url=environment.DATABASE_URL,
    )


def submit(client: httpx.Client, url: str, priority: str | None = None) -> str:
    """POST an analysis, insist on a 202, return the job id."""
    body = {"blog_url": url} if priority is None else {"blog_url": url, "priority": priority}
    response = client.post("/v1/analyses", json=body)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for_job(
    client: httpx.Client,
    job_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda job: job["status"] in TERMINAL,
    timeout: float = 30,
    what: str = "a final status",
) -> dict[str, Any]:
    """Poll the job through the API until `until(job)` holds."""
    deadline = time.monotonic() + timeout
    job = get_job(client, job_id)
    while not until(job):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never reached {what} in {timeout} s: {job}")
        time.sleep(0.05)
        job = get_job(client, job_id)
    return job


def running_with_progress(job: dict[str, Any]) -> bool:
    return job["status"] == "running" and job["progress"] is not None


def job_row(job_id: str) -> dict[str, Any]:
    """The job's row as stored (with the columns the API does not show: attempts, heartbeat)."""
    with psycopg.connect(environment.DATABASE_URL, row_factory=dict_row) as conn:
        row = conn.execute("SELECT * FROM jobs WHERE id = %s", (job_id,)).fetchone()
    assert row is not None, f"no job row {job_id}"
    return row


def query(sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(environment.DATABASE_URL) as conn:
        return conn.execute(sql, params).fetchall()


def queue_depth(queue: str) -> int:
    """Messages ready in a queue (not counting those delivered and not yet acked)."""
    connection = pika.BlockingConnection(pika_parameters(environment.AMQP_URL))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def pool_child(worker: Service) -> psutil.Process:
    """The one pool process of a `concurrency=1` worker."""
    children = [p for p in worker.children() if p.status() != psutil.STATUS_ZOMBIE]
    assert len(children) == 1, f"expected one pool child, found {children}"
    return children[0]


def kill_pool_child(worker: Service) -> int:
    """SIGKILL the pool child of a `concurrency=1` worker (never its main process)."""
    child = pool_child(worker)
    assert child.pid != worker.pid
    os.kill(child.pid, signal.SIGKILL)
    child.wait(5)
    return int(child.pid)


def wait_for_new_child(worker: Service, old_pid: int, timeout: float = 20) -> None:
    def replaced() -> bool:
        assert worker.process.poll() is None, f"worker exited:\n{worker.log()[-3000:]}"
        pids = [p.pid for p in worker.children() if p.status() != psutil.STATUS_ZOMBIE]
        return bool(pids) and old_pid not in pids

    wait_until(replaced, timeout, "the pool to replace its killed child", step=0.1)
