"""Accepting a job, the one way every kind does it: mint the id, record, publish, undo.

The job row is recorded first, with the task and queue to publish (the outbox,
services/gateway/jobs/outbox.py), then the message is published with a confirm, then the 202
goes out: a worker never sees a message before its row, and a job whose request died between
record and publish is published by the relay. A publish that fails (503) discards the row, so
nothing is left claiming "queued". Whatever a kind prepared for its job (a report row, a
campaign's claim, an in-flight marker) is undone by the `undo` it hands in when this request's
job is not created: the publish or the insert failed, or an Idempotency-Key replay answered
with an earlier job.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from services.common import jobs
from services.common.contracts import MESSAGE_PRIORITY, TaskContract
from services.common.errors import DATABASE_UNAVAILABLE
from services.common.jobs import NewJob
from services.gateway.errors import DatabaseUnavailable
from services.gateway.jobs import idempotency
from services.gateway.jobs.batching import JobInserter
from services.gateway.jobs.idempotency import Idempotency
from services.gateway.jobs.outbox import PublishedMarks
from services.gateway.jobs.service import JobService
from services.gateway.messaging import celery_message
from services.gateway.messaging.publisher import Publisher

log = logging.getLogger(__name__)

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

    @property
    def target_queue(self) -> str:
        return self.queue or self.contract.queue

    def row(self, *, publish: bool = True) -> NewJob:
        """The job's row; with `publish`, naming what to publish (else another publishes it)."""
        return (
            self.job_id,
            self.kind,
            Jsonb(self.payload),
            MESSAGE_PRIORITY[self.priority],
            self.request_id,
            self.contract.name if publish else None,
            self.target_queue if publish else None,
        )

    def message(self) -> celery_message.CeleryMessage:
        """The task message, validated against the contract."""
        kwargs = {"job_id": str(self.job_id), **self.payload}
        self.contract.payload.model_validate(kwargs)
        return celery_message.build(
            self.contract.name,
            str(self.job_id),
            kwargs,
            priority=MESSAGE_PRIORITY[self.priority],
            request_id=self.request_id,
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
        self._published = PublishedMarks(pool)

    async def close(self) -> None:
        await self._inserter.close()
        await self._published.close()

    async def replay(self, idem: Idempotency | None) -> dict[str, Any] | None:
        """The job an earlier request with the same live Idempotency-Key created, if any."""
        if idem is None:
            return None
        async with self._pool.connection() as conn:
            job_id = await idempotency.find(conn, idem)
        return None if job_id is None else await self._jobs.get(job_id)

    async def submit(self, request: JobRequest, *, undo: Undo | None = None) -> Submitted:
        """Record the job, publish its task, and keep the job only if the broker confirmed."""
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
            return await self._insert(request.row(publish=False))
        except BaseException:
            if undo is not None:
                await undo()
            raise

    async def _submit(self, request: JobRequest) -> Submitted:
        message = request.message()
        if request.idempotency is None:
            job = await self._insert(request.row())
        else:
            job, created = await self._record_once(request, request.idempotency)
            if not created:
                return Submitted(job, created=False)
        try:
            await self._publisher.publish(message, routing_key=request.target_queue)
        except BaseException:
            # Shielded: a request cancelled mid-publish still takes its row back.
            await asyncio.shield(self._discard(request.job_id))
            raise
        self._published.add(request.job_id)
        return Submitted(job, created=True)

    async def _discard(self, job_id: UUID) -> None:
        try:
            async with self._pool.connection() as conn:
                await jobs.discard_unpublished(conn, job_id)
        except DATABASE_UNAVAILABLE as exc:
            # The relay publishes it later: the job runs although its client got no 202.
            log.warning("unconfirmed job %s could not be discarded: %s", job_id, exc)

    async def _insert(self, row: NewJob) -> dict[str, Any]:
        try:
            return await self._inserter.insert(row)
        except DATABASE_UNAVAILABLE as exc:
            raise _not_recorded(exc) from exc

    async def _record_once(
        self, request: JobRequest, idem: Idempotency
    ) -> tuple[dict[str, Any], bool]:
        """Insert the job and claim the key in one transaction; (the job, created). A key a
        concurrent request holds answers with that request's job (ours is rolled back)."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                job = await jobs.insert(conn, request.row())
                if not await idempotency.claim(conn, idem, request.job_id):
                    raise _KeyHeld
        except _KeyHeld:
            existing = await self.replay(idem)
            assert existing is not None
            return existing, False
        except DATABASE_UNAVAILABLE as exc:
            raise _not_recorded(exc) from exc
        return job, True


def _not_recorded(exc: Exception) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"the job could not be recorded: {exc}", headers={"Retry-After": "5"}
    )
