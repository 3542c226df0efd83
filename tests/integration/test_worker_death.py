"""A pool child killed mid-task: the job is redelivered and completes once; a message that
keeps killing its worker is dead-lettered as poison instead of looping forever."""

import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from services.ops import deadletters
from tests.conftest import api
from tests.integration.conftest import (
    ANALYZER,
    Gateway,
    WorkerFactory,
    job_row,
    kill_pool_child,
    query,
    queue_depth,
    running_with_progress,
    submit,
    wait_for_job,
    wait_for_new_child,
)
from tests.support import environment
from tests.support.blogserver import BlogServer
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

# The killed delivery dies holding the blog's crawl lock; its redelivery must take it back at
# once, not wait half the soft time limit (30 s by default) for a lock nobody will release.
REDELIVERED_WITHIN_S = 15


@pytest.fixture(scope="module")
def slow_blogs() -> Iterator[BlogServer]:
    """Two WordPress blogs answering every request after 0.2 s: a crawl takes a few seconds."""
    with BlogServer([], count=2, latency_s=0.2) as server:
        yield server


def test_a_job_whose_pool_child_is_killed_completes_exactly_once(
    gateway: Gateway, workers: WorkerFactory, slow_blogs: BlogServer, clean: None
) -> None:
    worker = workers(concurrency=1)
    with api(gateway.base_url) as client:
        job_id = submit(client, slow_blogs.url("wp0"))
        wait_for_job(client, job_id, running_with_progress, what="running with progress")
        killed = kill_pool_child(worker)
        assert get_status(job_id) == "running"
        wait_for_new_child(worker, killed)
        job = wait_for_job(client, job_id, timeout=REDELIVERED_WITHIN_S)

    assert job["status"] == "succeeded", job
    assert job["result"]["metrics"] == slow_blogs.blog("wp0").expected_metrics()
    assert job["progress"] == {"done": 30, "total": 30}
    # Started twice (the killed delivery and its redelivery), crawled twice, settled once.
    assert job_row(job_id)["attempts"] == 2
    assert slow_blogs.hits("/wp0/") == 2
    assert "still held" not in worker.log()
    scores = query(
        "SELECT job_id, score FROM blog_scores WHERE blog_url = %s", job["result"]["blog_url"]
    )
    assert [(str(found), score) for found, score in scores] == [
        (job_id, pytest.approx(job["result"]["score"]))
    ]
    assert query("SELECT count(*) FROM blog_scores") == [(1,)]
    assert queue_depth(ANALYZER.name) == 0
    assert deadletters.peek(environment.AMQP_URL, ANALYZER, 10) == []


def test_a_message_that_kills_its_worker_three_times_is_dead_lettered(
    gateway: Gateway, workers: WorkerFactory, slow_blogs: BlogServer, clean: None
) -> None:
    worker = workers(concurrency=1)
    with api(gateway.base_url) as client:
        job_id = submit(client, slow_blogs.url("wp1"))
        for delivery in (1, 2, 3):
            wait_until(partial(started, job_id, delivery), 30, f"delivery {delivery} to start")
            wait_for_new_child(worker, kill_pool_child(worker))
        job = wait_for_job(client, job_id, timeout=30)

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "poison_message"
    assert "killed its worker 3 times" in job["error"]["message"]
    letters = wait_for_dead_letters(1)
    assert len(letters) == 1, letters
    letter = letters[0]
    assert letter["reason"] == "poison_message"
    assert letter["job_id"] == job_id
    assert letter["task"] == "analyzer.analyze_blog"
    assert letter["queue"] == ANALYZER.name
    assert letter["kwargs"]["blog_url"] == slow_blogs.url("wp1")
    # The fourth delivery was dead-lettered without running, and nothing comes back.
    time.sleep(1.0)
    row = job_row(job_id)
    assert (row["status"], row["attempts"]) == ("failed", 3)
    assert queue_depth(ANALYZER.name) == 0
    assert len(deadletters.peek(environment.AMQP_URL, ANALYZER, 10)) == 1
    assert query("SELECT count(*) FROM blog_scores") == [(0,)]


def get_status(job_id: str) -> str:
    return str(job_row(job_id)["status"])


def started(job_id: str, times: int) -> bool:
    """The job is running and has been started `times` times (a delivery is in the task)."""
    row = job_row(job_id)
    assert row["attempts"] <= times, f"the job started more often than expected: {row}"
    return bool(row["status"] == "running" and row["attempts"] == times)


def wait_for_dead_letters(count: int, timeout: float = 10) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        letters = deadletters.peek(environment.AMQP_URL, ANALYZER, 10)
        if len(letters) >= count or time.monotonic() > deadline:
            return letters
        time.sleep(0.1)
