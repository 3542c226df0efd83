"""Accepting a job, the one way every kind does it: mint the id, record, publish, undo.

A job row exists only for a job the broker confirmed: the row is inserted after the confirm
(or, with an Idempotency-Key, in a transaction that commits after it), so a failed publish
leaves nothing behind claiming "queued". Workers tolerate seeing the message before the row.
Whatever a kind prepared for its job (a report row, a campaign's claim, an in-flight marker)
is undone by the `undo` it hands in when this request's job is not created: the publish or
the insert failed, or an Idempotency-Key replay answered with an earlier job.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import psycopg
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.common import jobs
from services.common.contracts import MESSAGE_PRIORITY, TaskContract
from services.common.jobs import NewJob
from services.gateway.errors import DatabaseUnavailable
from services.gateway.jobs import idempotency
from services.gateway.jobs.batching import JobInserter
from services.gateway.jobs.idempotency import Idempotency
from services.gateway.jobs.service import JobService
from services.gateway.messaging import celery_message
from services.gateway.messaging.publisher import Publisher

Undo = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class JobRequest:
    """A job to accept: its task, kind, payload and options; its id is minted here, once."""

    contract: TaskContract
    kind: str
    payload: dict[str, Any]
    priority: str
    request_id: str | None
    idempotency: Idempotency | None = None
    queue: str | None = None
    job_id: UUID = field(default_factory=uuid4)

    def row(self) -> NewJob:
        return (
            self.job_id,
            self.kind,
            Jsonb(self.payload),
            MESSAGE_PRIORITY[self.priority],
            self.request_id,
        )


@dataclass(frozen=True)
class Submitted:
    """A job row and whether this request created it (False: an idempotent replay)."""

    job: dict[str, Any]
    created: bool


class _KeyHeld(Exception):
    """Another live request already holds this Idempotency-Key (rolls our insert back)."""


class Admission:
    """Records and publishes jobs for every route that accepts work."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        publisher: Publisher,
        job_service: JobService,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._jobs = job_service
        self._inserter = JobInserter(pool)

    async def close(self) -> None:
        await self._inserter.close()

    async def replay(self, idem: Idempotency | None) -> dict[str, Any] | None:
        """The job an earlier request with the same live Idempotency-Key created, if any."""
        if idem is None:
            return None
        async with self._pool.connection() as conn:
            job_id = await idempotency.find(conn, idem)
        return None if job_id is None else await self._jobs.get(job_id)

    async def submit(self, request: JobRequest, *, undo: Undo | None = None) -> Submitted:
        """Publish the job's task and record the job; nothing is recorded unless confirmed."""
        try:
            submitted = await self._submit(request)
        except BaseException:
            if undo is not None:
                await undo()
            raise
        if not submitted.created and undo is not None:
            await undo()
        return submitted

    async def record(self, request: JobRequest, *, undo: Undo | None = None) -> dict[str, Any]:
        """Record a queued job that something else publishes later (a scheduled campaign)."""
        try:
            return await self._insert(request.row())
        except BaseException:
            if undo is not None:
                await undo()
            raise

    async def _submit(self, request: JobRequest) -> Submitted:
        kwargs = {"job_id": str(request.job_id), **request.payload}
        request.contract.payload.model_validate(kwargs)
        message = celery_message.build(
            request.contract.name,
            str(request.job_id),
            kwargs,
            priority=MESSAGE_PRIORITY[request.priority],
            request_id=request.request_id,
        )
        queue = request.queue or request.contract.queue
        if request.idempotency is not None:
            return await self._submit_once(message, queue, request, request.idempotency)
        await self._publisher.publish(message, routing_key=queue)
        # The broker has the job: record it (one round trip). A worker that is faster than this
        # insert waits for the row; if the insert fails, the client gets a 503 and the worker
        # drops the message when no row appears.
        return Submitted(await self._insert(request.row()), created=True)

    async def _insert(self, row: NewJob) -> dict[str, Any]:
        try:
            return await self._inserter.insert(row)
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise DatabaseUnavailable(
                f"the job could not be recorded: {exc}", headers={"Retry-After": "5"}
            ) from exc

    async def _submit_once(
        self,
        message: celery_message.CeleryMessage,
        queue: str,
        request: JobRequest,
        idem: Idempotency,
    ) -> Submitted:
        """Insert, claim the key and publish in one transaction that commits after the confirm."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                job = await jobs.insert(conn, request.row())
                if not await idempotency.claim(conn, idem, request.job_id):
                    raise _KeyHeld
                await self._publisher.publish(message, routing_key=queue)
        except _KeyHeld:
            # A concurrent request holds the key: our row is rolled back, answer with its job.
            existing = await self.replay(idem)
            assert existing is not None
            return Submitted(existing, created=False)
        return Submitted(job, created=True)
