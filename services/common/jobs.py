"""The job table: the system of record for every job's status, progress, result and error.

This module is the only code that writes `jobs`. The statements are functions that take the
connection to run on, so a campaign's or report's transaction includes its job's transition:
sync ones for the workers, async ones for the gateway. `JobStore` is the workers' handle on
them over a connection pool. Every transition is guarded by the current status, so a
cancelled job stays cancelled whatever a worker that did not notice yet tries to write.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StartOutcome(enum.StrEnum):
    """What a worker found when it tried to start a job."""

    STARTED = "started"
    CANCELLED = "cancelled"
    FINISHED = "finished"
    MISSING = "missing"


JOB_COLUMNS = (
    "id, kind, status, payload, priority, request_id, progress_done, progress_total, result, "
    "error_code, error_message, attempts, created_at, started_at, finished_at"
)

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = %s"

INSERT_JOB = (
    "INSERT INTO jobs (id, kind, status, payload, priority, request_id) "
    f"VALUES (%s, %s, 'queued', %s, %s, %s) RETURNING {JOB_COLUMNS}"
)

CANCEL_JOB = (
    "UPDATE jobs SET status = 'cancelled', finished_at = now() "
    f"WHERE id = %s AND status IN ('queued', 'running') RETURNING {JOB_COLUMNS}"
)

START_JOB = (
    "UPDATE jobs SET status = 'running', started_at = coalesce(started_at, now()), "
    "heartbeat_at = now(), attempts = attempts + 1 "
    "WHERE id = %s AND status IN ('queued', 'running') RETURNING id"
)

# The gateway's inserts also record what to publish (task, queue), before it is published.
INSERT_OUTBOX_JOB = (
    "INSERT INTO jobs (id, kind, status, payload, priority, request_id, task, queue) "
    f"VALUES (%s, %s, 'queued', %s, %s, %s, %s, %s) RETURNING {JOB_COLUMNS}"
)

INSERT_OUTBOX_JOBS = (
    "INSERT INTO jobs (id, kind, status, payload, priority, request_id, task, queue) "
    "SELECT id, kind, 'queued', payload, priority, request_id, task, queue "
    "FROM unnest(%s::uuid[], %s::text[], %s::jsonb[], %s::smallint[], %s::text[], "
    "%s::text[], %s::text[]) AS t(id, kind, payload, priority, request_id, task, queue) "
    f"RETURNING {JOB_COLUMNS}"
)

MARK_PUBLISHED = "UPDATE jobs SET published_at = now() WHERE id = ANY(%s) AND published_at IS NULL"

# A job whose publish failed: gone, unless a relay or a worker already moved it on.
DISCARD_UNPUBLISHED = (
    "DELETE FROM jobs WHERE id = %s AND published_at IS NULL AND status = 'queued'"
)

# Recorded more than `grace` seconds ago and still not published: what the relay publishes.
TAKE_UNPUBLISHED = (
    "SELECT id, payload, priority, request_id, task, queue FROM jobs "
    "WHERE published_at IS NULL AND task IS NOT NULL AND status = 'queued' "
    "AND created_at < now() - make_interval(secs => %s) "
    "ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED"
)

PROGRESS_JOB = (
    "UPDATE jobs SET progress_done = %s, progress_total = %s, heartbeat_at = now() "
    "WHERE id = %s AND status = 'running' RETURNING id"
)

REOPEN_JOB = (
    "UPDATE jobs SET status = 'queued', error_code = NULL, error_message = NULL, "
    "finished_at = NULL WHERE id = %s AND status = 'failed'"
)

FINISH_JOB = (
    "UPDATE jobs SET status = %s, result = %s, error_code = %s, error_message = %s, "
    "progress_done = coalesce(%s, progress_done), progress_total = coalesce(%s, progress_total), "
    "finished_at = now(), heartbeat_at = now() "
    "WHERE id = %s AND status IN ('queued', 'running') RETURNING id"
)

HEARTBEAT_UNTIL = (
    "UPDATE jobs SET heartbeat_at = now() + make_interval(secs => %s), error_message = %s "
    "WHERE id = %s AND status = 'running' RETURNING id"
)

SWEEP_STALE = (
    "UPDATE jobs SET status = 'failed', error_code = 'worker_lost', "
    "error_message = 'no sign of life from a worker for ' || %s || ' s', finished_at = now() "
    "WHERE status = 'running' AND kind = %s "
    "AND coalesce(heartbeat_at, started_at, created_at) < now() - make_interval(secs => %s) "
    "RETURNING id"
)


# (id, kind, payload, priority, request id, task, queue): a queued job as the gateway records
# it, with the task to publish for it (None when something else publishes it later).
NewJob = tuple[UUID, str, Jsonb, int, str | None, str | None, str | None]


# Sync: the workers' transitions, on a connection the caller holds (its transaction, if any).


def start(conn: Connection[Any], job_id: UUID) -> StartOutcome:
    """Mark the job running unless it was cancelled or already finished."""
    # Two tries: the row may appear (gateway insert) between the update and the select.
    for _ in range(2):
        if conn.execute(START_JOB, (job_id,)).fetchone():
            return StartOutcome.STARTED
        row = conn.execute("SELECT status FROM jobs WHERE id = %s", (job_id,)).fetchone()
        if row is None:
            return StartOutcome.MISSING
        if row[0] == JobStatus.CANCELLED:
            return StartOutcome.CANCELLED
        if row[0] in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            return StartOutcome.FINISHED
    return StartOutcome.FINISHED


def record_progress(conn: Connection[Any], job_id: UUID, done: int, total: int) -> bool:
    """Record progress; False when the job is no longer running (cancelled or settled)."""
    return conn.execute(PROGRESS_JOB, (done, total, job_id)).fetchone() is not None


def finish(
    conn: Connection[Any],
    job_id: UUID,
    status: JobStatus,
    *,
    result: Mapping[str, Any] | None = None,
    code: str | None = None,
    message: str | None = None,
    progress: tuple[int, int] | None = None,
) -> bool:
    """Settle a queued or running job; False if it had already been settled (or cancelled)."""
    payload = Jsonb(json.loads(json.dumps(result))) if result is not None else None
    done, total = progress if progress is not None else (None, None)
    row = conn.execute(FINISH_JOB, (status, payload, code, message, done, total, job_id)).fetchone()
    return row is not None


def schedule_retry(conn: Connection[Any], job_id: UUID, delay_s: float, reason: str) -> None:
    """Keep a job that waits for a retry from looking dead to the sweeper."""
    conn.execute(HEARTBEAT_UNTIL, (delay_s, f"retrying: {reason}", job_id))


def sweep(conn: Connection[Any], kind: str, stale_after_s: float) -> list[UUID]:
    """Fail running jobs of `kind` whose worker has been silent for `stale_after_s`."""
    rows = conn.execute(SWEEP_STALE, (int(stale_after_s), kind, stale_after_s)).fetchall()
    return [row[0] for row in rows]


def reopen(conn: Connection[Any], job_id: str | UUID) -> None:
    """Queue a failed job again (its dead letter is being re-driven)."""
    conn.execute(REOPEN_JOB, (job_id,))


# Async: the gateway's writes.


async def insert(conn: AsyncConnection[Any], job: NewJob) -> dict[str, Any]:
    """Record one queued job, its message not yet published; the inserted row."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(INSERT_OUTBOX_JOB, job)
        row = await cur.fetchone()
    assert row is not None
    return row


async def insert_many(conn: AsyncConnection[Any], jobs: list[NewJob]) -> dict[UUID, dict[str, Any]]:
    """Record many queued jobs in one statement; the inserted rows by id."""
    columns = [list(column) for column in zip(*jobs, strict=True)]
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(INSERT_OUTBOX_JOBS, columns)
        return {row["id"]: row for row in await cur.fetchall()}


async def mark_published(conn: AsyncConnection[Any], job_ids: list[UUID]) -> None:
    """The broker confirmed these jobs' messages: no relay publishes them again."""
    await conn.execute(MARK_PUBLISHED, (job_ids,))


async def discard_unpublished(conn: AsyncConnection[Any], job_id: UUID) -> None:
    """Forget a job whose message the broker did not confirm (the client got a 503)."""
    await conn.execute(DISCARD_UNPUBLISHED, (job_id,))


async def take_unpublished(
    conn: AsyncConnection[Any], grace_s: float, limit: int
) -> list[dict[str, Any]]:
    """Lock up to `limit` jobs recorded over `grace_s` ago and still unpublished (call inside
    a transaction; rows another relay holds are skipped)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(TAKE_UNPUBLISHED, (grace_s, limit))
        return await cur.fetchall()


async def cancel(conn: AsyncConnection[Any], job_id: UUID) -> dict[str, Any] | None:
    """Cancel a queued or running job; its row, or None if it was not active."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CANCEL_JOB, (job_id,))
        return await cur.fetchone()


async def fetch(conn: AsyncConnection[Any], job_id: UUID) -> dict[str, Any] | None:
    """The job row, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_JOB, (job_id,))
        return await cur.fetchone()


class JobStore:
    """The workers' handle on the job table: each call runs on a connection from the pool."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def get(self, job_id: UUID) -> dict[str, Any] | None:
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(SELECT_JOB, (job_id,)).fetchone()

    def start(self, job_id: UUID) -> StartOutcome:
        """Mark the job running unless it was cancelled or already finished."""
        with self._pool.connection() as conn:
            return start(conn, job_id)

    def progress(self, job_id: UUID, done: int, total: int) -> bool:
        """Record progress; False when the job is no longer running (cancelled or settled)."""
        with self._pool.connection() as conn:
            return record_progress(conn, job_id, done, total)

    def succeed(self, job_id: UUID, result: Mapping[str, Any]) -> bool:
        with self._pool.connection() as conn:
            return finish(conn, job_id, JobStatus.SUCCEEDED, result=result)

    def fail(self, job_id: UUID, code: str, message: str) -> bool:
        with self._pool.connection() as conn:
            return finish(conn, job_id, JobStatus.FAILED, code=code, message=message)

    def retry_scheduled(self, job_id: UUID, delay_s: float, reason: str) -> None:
        """Keep a job that waits for a retry from looking dead to the sweeper."""
        with self._pool.connection() as conn:
            schedule_retry(conn, job_id, delay_s, reason)

    def sweep(self, kind: str, stale_after_s: float) -> list[UUID]:
        """Fail running jobs of `kind` whose worker has been silent for `stale_after_s`."""
        with self._pool.connection() as conn:
            return sweep(conn, kind, stale_after_s)
