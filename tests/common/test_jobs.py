"""Job transitions against the real Postgres: a cancel sticks whatever a worker writes later."""

import uuid
from collections.abc import Iterator

import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.common.jobs import INSERT_JOB, JobStatus, JobStore, StartOutcome, job_view
from tests.support import environment

pytestmark = pytest.mark.integration


@pytest.fixture
def store(clean: None) -> Iterator[JobStore]:
    with ConnectionPool(environment.DATABASE_URL, kwargs={"autocommit": True}) as pool:
        yield JobStore(pool)


def new_job(store: JobStore) -> uuid.UUID:
    job_id = uuid.uuid4()
    with store._pool.connection() as conn:
        conn.execute(INSERT_JOB, (job_id, "analysis", Jsonb({"blog_url": "x"}), 5, "req"))
    return job_id


def cancel(store: JobStore, job_id: uuid.UUID) -> None:
    with store._pool.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE id = %s", (job_id,))


def test_happy_path(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.start(job_id) is StartOutcome.STARTED
    assert store.progress(job_id, 3, 30)
    assert store.succeed(job_id, {"score": 1.5})
    view = job_view(store.get(job_id) or {})
    assert view["status"] == JobStatus.SUCCEEDED
    assert view["progress"] == {"done": 3, "total": 30}
    assert view["result"] == {"score": 1.5}
    assert view["error"] is None
    assert store.start(job_id) is StartOutcome.FINISHED  # a redelivery does not run it again


def test_cancel_sticks(store: JobStore) -> None:
    job_id = new_job(store)
    cancel(store, job_id)
    assert store.start(job_id) is StartOutcome.CANCELLED
    running = new_job(store)
    assert store.start(running) is StartOutcome.STARTED
    cancel(store, running)
    assert not store.progress(running, 1, 2)
    assert not store.succeed(running, {"late": True})
    assert not store.fail(running, "x", "late failure")
    assert (store.get(running) or {})["status"] == JobStatus.CANCELLED


def test_unknown_job(store: JobStore) -> None:
    assert store.start(uuid.uuid4()) is StartOutcome.MISSING


def test_failure_carries_code_and_message(store: JobStore) -> None:
    job_id = new_job(store)
    store.start(job_id)
    store.fail(job_id, "blog_not_found", "http://x/ answered 404")
    view = job_view(store.get(job_id) or {})
    assert view["status"] == "failed"
    assert view["error"] == {"code": "blog_not_found", "message": "http://x/ answered 404"}
