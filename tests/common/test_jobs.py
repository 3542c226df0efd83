"""Job transitions against the real Postgres: a cancel sticks whatever a worker writes later."""

import uuid
from collections.abc import Iterator

import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from services.common.jobs import INSERT_JOB, JobStatus, JobStore, StartOutcome
from services.gateway.jobs.view import job_view
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


def test_a_row_inserted_between_update_and_select_is_still_started(store: JobStore) -> None:
    """The gateway inserts the row just after the broker confirm; a fast worker may race it."""
    job_id = uuid.uuid4()
    real_execute_calls = []

    class RacingPool:
        """Inserts the job row right after the worker's first (missed) UPDATE."""

        def __init__(self, pool: ConnectionPool) -> None:
            self.pool = pool

        def connection(self):  # type: ignore[no-untyped-def]
            pool = self.pool

            class Conn:
                def __enter__(self):  # type: ignore[no-untyped-def]
                    self.ctx = pool.connection()
                    self.conn = self.ctx.__enter__()
                    return self

                def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                    return self.ctx.__exit__(*exc)

                def execute(self, query, params):  # type: ignore[no-untyped-def]
                    result = self.conn.execute(query, params)
                    real_execute_calls.append(query)
                    if len(real_execute_calls) == 1:
                        new_job_row(self.conn, job_id)
                    return result

            return Conn()

    racing = JobStore(RacingPool(store._pool))  # type: ignore[arg-type]
    assert racing.start(job_id) is StartOutcome.STARTED
    assert (store.get(job_id) or {})["status"] == JobStatus.RUNNING


def new_job_row(conn: object, job_id: uuid.UUID) -> None:
    conn.execute(INSERT_JOB, (job_id, "analysis", Jsonb({"blog_url": "x"}), 5, "req"))  # type: ignore[attr-defined]
