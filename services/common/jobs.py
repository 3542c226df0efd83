"""The job table: the system of record for every job's status, progress, result and error.

Workers use `JobStore` (sync psycopg); the gateway runs the same SQL through its async pool.
Every transition is guarded by the current status, so a cancelled job stays cancelled whatever
a worker that did not notice yet tries to write.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

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

PROGRESS_JOB = (
    "UPDATE jobs SET progress_done = %s, progress_total = %s, heartbeat_at = now() "
    "WHERE id = %s AND status = 'running' RETURNING id"
)

FINISH_JOB = (
    "UPDATE jobs SET status = %s, result = %s, error_code = %s, error_message = %s, "
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


def job_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """The public shape of a job row (what GET /v1/jobs/{id} returns)."""
    done, total = row["progress_done"], row["progress_total"]
    error = None
    if row["error_code"] and row["status"] in (JobStatus.FAILED, JobStatus.CANCELLED):
        error = {"code": row["error_code"], "message": row["error_message"] or ""}
    return {
        "job_id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "progress": {"done": done, "total": total} if total is not None else None,
        "result": row["result"],
        "error": error,
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class JobStore:
    """Job transitions as seen from a worker process."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def get(self, job_id: UUID) -> dict[str, Any] | None:
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(SELECT_JOB, (job_id,)).fetchone()

    def start(self, job_id: UUID) -> StartOutcome:
        """Mark the job running unless it was cancelled or already finished."""
        with self._pool.connection() as conn:
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

    def progress(self, job_id: UUID, done: int, total: int) -> bool:
        """Record progress; False when the job is no longer running (cancelled or settled)."""
        with self._pool.connection() as conn:
            return conn.execute(PROGRESS_JOB, (done, total, job_id)).fetchone() is not None

    def succeed(self, job_id: UUID, result: Mapping[str, Any]) -> bool:
        return self._finish(job_id, JobStatus.SUCCEEDED, result=result)

    def fail(self, job_id: UUID, code: str, message: str) -> bool:
        return self._finish(job_id, JobStatus.FAILED, code=code, message=message)

    def _finish(
        self,
        job_id: UUID,
        status: JobStatus,
        *,
        result: Mapping[str, Any] | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> bool:
        payload = Jsonb(json.loads(json.dumps(result))) if result is not None else None
        with self._pool.connection() as conn:
            row = conn.execute(FINISH_JOB, (status, payload, code, message, job_id)).fetchone()
            return row is not None

    def retry_scheduled(self, job_id: UUID, delay_s: float, reason: str) -> None:
        """Keep a job that waits for a retry from looking dead to the sweeper."""
        with self._pool.connection() as conn:
            conn.execute(HEARTBEAT_UNTIL, (delay_s, f"retrying: {reason}", job_id))

    def sweep(self, kind: str, stale_after_s: float) -> list[UUID]:
        """Fail running jobs of `kind` whose worker has been silent for `stale_after_s`."""
        with self._pool.connection() as conn:
            rows = conn.execute(SWEEP_STALE, (int(stale_after_s), kind, stale_after_s)).fetchall()
        return [row[0] for row in rows]
