"""Priorities on a busy queue: urgent analyses overtake a backlog of low-priority ones."""

from collections.abc import Iterator
from datetime import datetime

import pytest

from tests.conftest import api
from tests.integration.conftest import (
    ANALYZER,
    Gateway,
    WorkerFactory,
    get_job,
    queue_depth,
    submit,
    wait_for_job,
)
from tests.support.blogserver import BlogServer
from tests.support.processes import consumer_count

pytestmark = pytest.mark.integration

LOW, HIGH = 20, 2


@pytest.fixture(scope="module")
def many_blogs() -> Iterator[BlogServer]:
    with BlogServer([], count=LOW + HIGH) as server:
        yield server


def test_high_priority_jobs_start_before_a_low_priority_backlog(
    gateway: Gateway, workers: WorkerFactory, many_blogs: BlogServer, clean: None
) -> None:
    assert consumer_count(ANALYZER.name) == 0, "another worker consumes the test queue"
    with api(gateway.base_url) as client:
        low = [submit(client, many_blogs.url(f"wp{i}"), "low") for i in range(LOW)]
        high = [submit(client, many_blogs.url(f"wp{LOW + i}"), "high") for i in range(HIGH)]
        assert queue_depth(ANALYZER.name) == LOW + HIGH

        # One pool process with prefetch 1: jobs start one at a time, in the order delivered.
        workers(concurrency=1, OFFLOAD_CRAWL_MAX_POSTS="3")
        for job_id in high:
            assert wait_for_job(client, job_id)["status"] == "succeeded"
        jobs = {job_id: get_job(client, job_id) for job_id in low + high}

    started = sorted(
        (datetime.fromisoformat(job["started_at"]), job_id)
        for job_id, job in jobs.items()
        if job["started_at"] is not None
    )
    order = [job_id for _, job_id in started]
    assert set(order[:HIGH]) == set(high), (
        f"the first jobs to start were {['high' if j in high else 'low' for j in order]}"
    )
    # The backlog was really there when the urgent jobs ran: most low jobs had not started.
    assert len(order) - HIGH < LOW // 2
