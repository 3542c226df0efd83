"""Creating, reading and cancelling jobs from the gateway (async, same SQL as the workers).

A job row exists only for a job the broker confirmed: the row is inserted after the confirm
(or, with an Idempotency-Key, in a transaction that commits after it), so a failed publish
leaves nothing behind claiming "queued". Workers tolerate seeing the message before the row.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.common.contracts import MESSAGE_PRIORITY, TaskContract
from services.common.jobs import CANCEL_JOB, INSERT_JOB, SELECT_JOB, JobStatus
from services.gateway.errors import (
    DatabaseUnavailable,
    IdempotencyKeyReused,
    JobAlreadyFinished,
    JobNotFound,
)
from services.gateway.ids import parse_id
from services.gateway.jobs.batching import JobInserter
from services.gateway.messaging import celery_message
from services.gateway.messaging.publisher import Publisher

CLAIM_IDEMPOTENCY_KEY = """
INSERT INTO idempotency_keys (scope, key, request_hash, job_id) VALUES (%s, %s, %s, %s)
ON CONFLICT (scope, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, job_id = EXCLUDED.job_id, created_at = now()
WHERE idempotency_keys.created_at < now() - make_interval(secs => %s)
RETURNING job_id
"""

# Oldest first, a batch at a time; SKIP LOCKED lets every gateway process sweep at once without
# waiting on each other or on a request that is re-claiming an expired key.
PURGE_EXPIRED_KEYS = """
DELETE FROM idempotency_keys WHERE (scope, key) IN (
    SELECT scope, key FROM idempotency_keys
    WHERE created_at < now() - make_interval(secs => %s)
    ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
)
"""

FIND_IDEMPOTENT_JOB = """
SELECT request_hash, job_id FROM idempotency_keys
WHERE scope = %s AND key = %s AND created_at >= now() - make_interval(secs => %s)
"""


@dataclass(frozen=True)
class Idempotency:
    """A client's Idempotency-Key, scoped to its API key, and a hash of what it asked for."""

    scope: str
    key: str
    request_hash: str
    ttl_s: int


def request_hash(payload: dict[str, Any]) -> str:
    """A stable hash of a request body, to tell a retry from a different request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class _KeyHeld(Exception):
    """Another live request already holds this Idempotency-Key (rolls our insert back)."""


@dataclass(frozen=True)
class Submitted:
    """A job row and whether this request created it (False: an idempotent replay)."""

    job: dict[str, Any]
    created: bool


class JobRepository:
    """The job table as the gateway uses it."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool
        self._inserter = JobInserter(pool)

    async def close(self) -> None:
        await self._inserter.close()

    async def ping(self) -> None:
        """Round-trip to the database (readiness)."""
        async with self._pool.connection(timeout=1) as conn:
            await conn.execute("SELECT 1")

    async def get(self, job_id: str | UUID) -> dict[str, Any]:
        """The job row; JobNotFound for an id this system never issued."""
        uid = parse_id(job_id, JobNotFound, "job")
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(SELECT_JOB, (uid,))
            row = await cur.fetchone()
        if row is None:
            raise JobNotFound(f"no job with id {job_id}")
        return row

    async def find_idempotent(self, idem: Idempotency) -> dict[str, Any] | None:
        """The job an earlier request with the same key created, if the key is still live."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(FIND_IDEMPOTENT_JOB, (idem.scope, idem.key, idem.ttl_s))
            found = await cur.fetchone()
        if found is None:
            return None
        if found[0] != idem.request_hash:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request body"
            )
        return await self.get(found[1])

    async def purge_expired_keys(self, ttl_s: int, batch: int = 5000) -> int:
        """Delete idempotency keys older than `ttl_s`, `batch` rows per statement; how many."""
        purged = 0
        while True:
            async with self._pool.connection() as conn:
                cur = await conn.execute(PURGE_EXPIRED_KEYS, (ttl_s, batch))
            purged += cur.rowcount
            if cur.rowcount < batch:
                return purged

    async def submit(
        self,
        publisher: Publisher,
        contract: TaskContract,
        kind: str,
        payload: dict[str, Any],
        *,
        priority: str,
        request_id: str | None,
        idempotency: Idempotency | None,
        job_id: UUID | None = None,
        queue: str | None = None,
    ) -> Submitted:
        """Publish the job's task and record the job; nothing is recorded unless confirmed."""
        job_id = job_id or uuid4()
        kwargs = {"job_id": str(job_id), **payload}
        contract.payload.model_validate(kwargs)
        message = celery_message.build(
            contract.name,
            str(job_id),
            kwargs,
            priority=MESSAGE_PRIORITY[priority],
            request_id=request_id,
        )
        row = (job_id, kind, Jsonb(payload), MESSAGE_PRIORITY[priority], request_id)
        queue = queue or contract.queue
        if idempotency is not None:
            return await self._submit_once(publisher, message, queue, row, idempotency)
        await publisher.publish(message, routing_key=queue)
        # The broker has the job: record it (one round trip). A worker that is faster than this
        # insert waits for the row; if the insert fails, the client gets a 503 and the worker
        # drops the message when no row appears.
        try:
            job = await self._inserter.insert(row)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable(
                f"the job could not be recorded: {exc}", headers={"Retry-After": "5"}
            ) from exc
        return Submitted(job, created=True)

    async def record(
        self,
        job_id: UUID,
        kind: str,
        payload: dict[str, Any],
        *,
        priority: str,
        request_id: str | None,
    ) -> dict[str, Any]:
        """Insert a queued job that something else publishes later (a scheduled campaign)."""
        row = (job_id, kind, Jsonb(payload), MESSAGE_PRIORITY[priority], request_id)
        return await self._inserter.insert(row)

    async def _submit_once(
        self,
        publisher: Publisher,
        message: celery_message.CeleryMessage,
        queue: str,
        row: tuple[Any, ...],
        idempotency: Idempotency,
    ) -> Submitted:
        """Insert, claim the key and publish in one transaction that commits after the confirm."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(INSERT_JOB, row)
                job = await cur.fetchone()
                assert job is not None
                claimed = await conn.execute(
                    CLAIM_IDEMPOTENCY_KEY,
                    (
                        idempotency.scope,
                        idempotency.key,
                        idempotency.request_hash,
                        row[0],
                        idempotency.ttl_s,
                    ),
                )
                if await claimed.fetchone() is None:
                    raise _KeyHeld
                await publisher.publish(message, routing_key=queue)
        except _KeyHeld:
            # A concurrent request holds the key: our row is rolled back, answer with its job.
            existing = await self.find_idempotent(idempotency)
            assert existing is not None
            return Submitted(existing, created=False)
        return Submitted(job, created=True)

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job; JobAlreadyFinished if it had finished."""
        uid = parse_id(job_id, JobNotFound, "job")
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(CANCEL_JOB, (uid,))
            row = await cur.fetchone()
        if row is not None:
            return row
        job = await self.get(uid)
        raise JobAlreadyFinished(f"job {job_id} already {job['status']}")


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
