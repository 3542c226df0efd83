"""Reading and cancelling jobs from the gateway (the writes are services.common.jobs')."""

from collections.abc import Collection
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.common import jobs
from services.common.jobs import JobStatus
from services.gateway.errors import JobAlreadyFinished, JobNotFound
from services.gateway.ids import fetch_or_404, parse_id

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobService:
    """Jobs as the API reads and cancels them."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool

    async def ping(self) -> None:
        """Round-trip to the database (readiness)."""
        async with self._pool.connection(timeout=1) as conn:
            await conn.execute("SELECT 1")

    async def get(self, job_id: str | UUID) -> dict[str, Any]:
        """The job row; JobNotFound for an id this system never issued."""
        return await fetch_or_404(self._pool, jobs.fetch, job_id, JobNotFound, "job")

    async def find(
        self, job_id: str | UUID, statuses: Collection[JobStatus]
    ) -> dict[str, Any] | None:
        """The job if it exists and is in one of `statuses`, else None."""
        try:
            job = await self.get(job_id)
        except JobNotFound:
            return None
        return job if job["status"] in statuses else None

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; JobAlreadyFinished if it had finished."""
        uid = parse_id(job_id, JobNotFound, "job")
        async with self._pool.connection() as conn:
            row = await jobs.cancel(conn, uid)
        if row is not None:
            return row
        job = await self.get(uid)
        raise JobAlreadyFinished(f"job {job_id} already {job['status']}")
