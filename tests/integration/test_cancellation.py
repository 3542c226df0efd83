"""Cancellation sticks: a cancelled job never runs, a running one stops, and neither comes back
to life when its message is redelivered to a new worker."""

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import api
from tests.integration.conftest import (
    ANALYZER,
    Gateway,
    WorkerFactory,
    get_job,
    job_row,
    query,
    queue_depth,
    running_with_progress,
    submit,
    wait_for_job,
)
from tests.support.blogserver import BlogServer
from tests.support.processes import Service, consumer_count, wait_until

pytestmark = pytest.mark.integration

# Requests a full crawl of a WordPress test blog makes: /wpN (301), home, two feed pages, 30 posts.
FULL_CRAWL = 34


@pytest.fixture(scope="module")
def cancel_blogs() -> Iterator[BlogServer]:
    with BlogServer([], count=3) as server:
        yield server


@pytest.fixture
def slow(cancel_blogs: BlogServer) -> Iterator[BlogServer]:
    """Every request answered after 0.3 s: a crawl takes seconds, long enough to cancel it."""
    cancel_blogs.reset_stats()
    cancel_blogs.latency_s = 0.3
    try:
        yield cancel_blogs
    finally:
        cancel_blogs.latency_s = 0.0


def cancel(client: httpx.Client, job_id: str) -> dict[str, object]:
    response = client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, object] = response.json()
    assert job["status"] == "cancelled"
    return job


def logged(worker: Service, job_id: str, message: str, timeout: float = 15) -> None:
    """Wait until the worker logged `message` while working on the job."""

    def found() -> bool:
        return any(message in line and job_id in line for line in worker.log().splitlines())

    wait_until(found, timeout, f"{worker.name} to log {message!r} for job {job_id}", step=0.1)


def settled_hits(blogs: BlogServer, quiet_s: float = 1.5, timeout: float = 10) -> int:
    """The blog server's hit count once no request arrived for `quiet_s`."""
    deadline = time.monotonic() + timeout
    last, since = blogs.total_hits(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, f"requests kept coming for {timeout} s"
        time.sleep(0.1)
        now = blogs.total_hits()
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_a_job_cancelled_while_queued_never_runs(
    gateway: Gateway, workers: WorkerFactory, cancel_blogs: BlogServer, clean: None
) -> None:
    cancel_blogs.reset_stats()
    assert consumer_count(ANALYZER.name) == 0, "another worker consumes the test queue"
    with api(gateway.base_url) as client:
        job_id = submit(client, cancel_blogs.url("wp0"))
        cancelled = cancel(client, job_id)
        assert cancelled["finished_at"] is not None
        again = client.delete(f"/v1/jobs/{job_id}")
        assert again.status_code == 409, again.text
        assert again.json()["error"]["code"] == "job_finished"

        worker = workers(concurrency=1)
        logged(worker, job_id, "job not started: cancelled")
        wait_until(lambda: queue_depth(ANALYZER.name) == 0, 5, "the queue to drain")
        job = get_job(client, job_id)

    assert job["status"] == "cancelled"
    assert job["started_at"] is None and job["result"] is None
    assert job_row(job_id)["attempts"] == 0
    assert cancel_blogs.total_hits() == 0


def test_cancelling_a_running_job_stops_its_crawl(
    gateway: Gateway, workers: WorkerFactory, slow: BlogServer, clean: None
) -> None:
    worker = workers(concurrency=1)
    with api(gateway.base_url) as client:
        job_id = submit(client, slow.url("wp1"))
        wait_for_job(client, job_id, running_with_progress, what="running with progress")
        cancel(client, job_id)
        cancelled_at = time.monotonic()
        logged(worker, job_id, "job cancelled while running")
        hits = settled_hits(slow)
        stopped_within = time.monotonic() - cancelled_at
        job = get_job(client, job_id)

    assert hits < FULL_CRAWL, "the crawl ran to its end"
    assert stopped_within < 6, f"requests kept coming for {stopped_within:.1f} s after cancel"
    assert job["status"] == "cancelled", job
    assert job["result"] is None and job["error"] is None
    assert query("SELECT count(*) FROM blog_scores") == [(0,)]


def test_a_cancelled_job_stays_cancelled_when_a_new_worker_gets_its_message(
    gateway: Gateway, workers: WorkerFactory, slow: BlogServer, clean: None
) -> None:
    first = workers(concurrency=1)
    with api(gateway.base_url) as client:
        job_id = submit(client, slow.url("wp2"))
        wait_for_job(client, job_id, running_with_progress, what="running with progress")
        # The whole pool dies mid-crawl and the job is cancelled while it is down: the unacked
        # message goes back to the queue, and the next worker has to honour the cancellation.
        os.killpg(first.pid, signal.SIGKILL)
        first.process.wait(10)
        first.stop()
        cancel(client, job_id)
        wait_until(lambda: queue_depth(ANALYZER.name) == 1, 10, "the message to be requeued")
        hits = settled_hits(slow)

        second = workers(concurrency=1)
        logged(second, job_id, "job not started: cancelled")
        wait_until(lambda: queue_depth(ANALYZER.name) == 0, 5, "the queue to drain")
        time.sleep(0.5)
        job = get_job(client, job_id)

    assert job["status"] == "cancelled", job
    assert job["result"] is None
    assert job_row(job_id)["attempts"] == 1
    assert slow.total_hits() == hits, "the new worker crawled a cancelled job"
    assert query("SELECT count(*) FROM blog_scores") == [(0,)]
