"""A permanently failing task: retried with backoff, dead-lettered with its reason, re-driven."""

import time
from collections.abc import Iterator

import pytest

from services.ops import deadletters
from tests.conftest import api
from tests.integration.conftest import (
    ANALYZER,
    Gateway,
    WorkerFactory,
    get_job,
    job_row,
    queue_depth,
    settings,
    submit,
    wait_for_job,
)
from tests.support import environment
from tests.support.blogserver import BlogServer
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

MAX_RETRIES = 2  # the analyzer's default: three attempts in all


@pytest.fixture(scope="module")
def flaky_blogs() -> Iterator[BlogServer]:
    with BlogServer([], count=1) as server:
        yield server


def test_a_failing_task_is_retried_dead_lettered_and_can_be_re_driven(
    gateway: Gateway, workers: WorkerFactory, flaky_blogs: BlogServer, clean: None
) -> None:
    flaky_blogs.reset_stats()
    # The crawler asks for the URL as normalised (no trailing slash): its home page is down.
    home = "/wp0"
    flaky_blogs.fail_next(home, 503, times=100)
    worker = workers(concurrency=1)
    with api(gateway.base_url) as client:
        job_id = submit(client, flaky_blogs.url("wp0"))
        failed = wait_for_job(client, job_id)

        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "retries_exhausted"
        assert "HTTP 503" in failed["error"]["message"]
        assert f"after {MAX_RETRIES + 1} attempts" in failed["error"]["message"]
        # Three crawls, each with the crawler's one quick second try of the page.
        assert flaky_blogs.hits(home) == 2 * (MAX_RETRIES + 1)
        assert job_row(job_id)["attempts"] == MAX_RETRIES + 1
        log = worker.log()
        assert log.count("transient failure, retry") == MAX_RETRIES, log[-3000:]

        time.sleep(0.5)  # nothing else is on its way to the dead-letter queue
        letters = deadletters.peek(environment.AMQP_URL, ANALYZER, 10)
        assert len(letters) == 1, letters
        letter = letters[0]
        assert letter["reason"] == "retries_exhausted"
        assert letter["job_id"] == job_id
        assert letter["task"] == "analyzer.analyze_blog"
        assert letter["queue"] == ANALYZER.name
        assert "HTTP 503" in letter["error"]
        assert letter["failed_at"]
        assert letter["kwargs"] == {"job_id": job_id, "blog_url": flaky_blogs.url("wp0")}
        assert queue_depth(ANALYZER.name) == 0

        # The blog is back. With no worker running, re-drive: the job is queued again.
        worker.stop()
        flaky_blogs.reset_stats()
        assert deadletters.redrive(settings(), ANALYZER, 10) == 1
        assert deadletters.peek(environment.AMQP_URL, ANALYZER, 10) == []
        assert queue_depth(ANALYZER.name) == 1
        queued = get_job(client, job_id)
        assert (queued["status"], queued["error"], queued["finished_at"]) == ("queued", None, None)

        workers(concurrency=1)
        job = wait_for_job(client, job_id)

    assert job["status"] == "succeeded", job
    assert job["result"]["metrics"] == flaky_blogs.blog("wp0").expected_metrics()
    assert flaky_blogs.hits("/wp0/") == 1
    assert deadletters.peek(environment.AMQP_URL, ANALYZER, 10) == []
    wait_until(lambda: queue_depth(ANALYZER.name) == 0, 5, "the queue to drain")
