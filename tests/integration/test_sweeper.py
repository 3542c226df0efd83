"""The sweeper settles jobs whose worker vanished (running, no heartbeat), and only those."""

from collections.abc import Iterator
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from services.common.jobs import JobStore
from services.common.worker.app import create_celery
from services.gateway.jobs.view import job_view
from services.ops.beat import SCHEDULE
from tests.integration.conftest import WorkerFactory, job_row, settings
from tests.support import environment
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

# What the analyzer's sweep task waits for with default settings: task_time_limit_s + 60.
ANALYZER_STALE_AFTER_S = 90 + 60


def insert_job(status: str, heartbeat_age_s: float, kind: str = "analysis") -> UUID:
    """A job row as a worker would have left it, last heard of `heartbeat_age_s` ago."""
    job_id = uuid4()
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, status, payload, started_at, heartbeat_at, attempts) "
            "VALUES (%s, %s, %s, '{}', "
            "CASE WHEN %s = 'running' THEN now() - interval '1 hour' END, "
            "now() - make_interval(secs => %s), 1)",
            (job_id, kind, status, status, heartbeat_age_s),
        )
    return job_id


@pytest.fixture
def store(clean: None) -> Iterator[JobStore]:
    with ConnectionPool(
        environment.DATABASE_URL, min_size=1, max_size=2, kwargs={"autocommit": True}
    ) as pool:
        yield JobStore(pool)


def test_a_running_job_without_a_heartbeat_is_failed_as_worker_lost(store: JobStore) -> None:
    stale = insert_job("running", heartbeat_age_s=3600)
    fresh = insert_job("running", heartbeat_age_s=5)
    queued = insert_job("queued", heartbeat_age_s=3600)
    other_kind = insert_job("running", heartbeat_age_s=3600, kind="report")
    # A job waiting for a retry pushes its heartbeat past the delay (JobStore.retry_scheduled).
    retrying = insert_job("running", heartbeat_age_s=3600)
    store.retry_scheduled(retrying, 600, "HTTP 503")

    assert store.sweep("analysis", 60) == [stale]

    swept = store.get(stale)
    assert swept is not None
    view = job_view(swept)
    assert view["status"] == "failed"
    assert view["error"] == {
        "code": "worker_lost",
        "message": "no sign of life from a worker for 60 s",
    }
    assert view["finished_at"] is not None
    for job_id, status in (
        (fresh, "running"),
        (queued, "queued"),
        (other_kind, "running"),
        (retrying, "running"),
    ):
        row = store.get(job_id)
        assert row is not None
        assert (row["status"], row["error_code"]) == (status, None), row
    # A second sweep finds nothing left to settle.
    assert store.sweep("analysis", 60) == []


def test_the_periodic_sweep_task_settles_stale_jobs_on_a_running_worker(
    workers: WorkerFactory, clean: None
) -> None:
    stale = insert_job("running", heartbeat_age_s=ANALYZER_STALE_AFTER_S + 600)
    recent = insert_job("running", heartbeat_age_s=ANALYZER_STALE_AFTER_S - 60)
    worker = workers(concurrency=1)

    # Publish it exactly as beat does: same task name, queue and options.
    entry = SCHEDULE["analyzer-sweep-stale-jobs"]
    app = create_celery(None, settings())
    try:
        options = entry["options"]
        assert isinstance(options, dict)
        app.send_task(str(entry["task"]), **options)
    finally:
        app.close()

    wait_until(lambda: job_row(str(stale))["status"] == "failed", 20, "the sweep to run")
    wait_until(
        lambda: "sweep_stale_jobs" in worker.log() and "succeeded" in worker.log(),
        5,
        "the sweep task to finish",
    )
    assert job_row(str(stale))["error_code"] == "worker_lost"
    assert [
        line
        for line in worker.log().splitlines()
        if "sweep_stale_jobs" in line and "succeeded" in line and ": 1" in line
    ]
    assert job_row(str(recent))["status"] == "running"
