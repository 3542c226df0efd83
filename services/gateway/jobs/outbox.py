"""The job table as an outbox: what was recorded is published, even if the request died.

A job is recorded (with the task and queue to publish) before its message is published, so a
confirmed message always has its row. Confirmed jobs are marked published off the request path
(`PublishedMarks`, many per statement); the relay in every gateway process publishes the jobs
that stayed unpublished past a grace period: a gateway that crashed between record and publish,
or a publish whose failure could not be undone. A job may so be published twice (a crash after
the confirm, before the mark); workers skip a delivery for a job that already finished.
"""

import asyncio
import contextlib
import logging
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.common import jobs
from services.common.errors import DATABASE_UNAVAILABLE
from services.gateway.errors import BrokerUnavailable
from services.gateway.messaging import celery_message
from services.gateway.messaging.publisher import Publisher
from services.gateway.periodic import Periodic

log = logging.getLogger(__name__)


def message_for(job: dict[str, Any]) -> celery_message.CeleryMessage:
    """The task message of a recorded job (as the request that recorded it built it)."""
    job_id = str(job["id"])
    return celery_message.build(
        job["task"],
        job_id,
        {"job_id": job_id, **job["payload"]},
        priority=job["priority"],
        request_id=job["request_id"],
    )


class PublishedMarks:
    """Marks jobs published once confirmed, batched, without holding up the response."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool
        self._pending: list[UUID] = []
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._flush_forever(), name="offload-published-marks")

    def add(self, job_id: UUID) -> None:
        self._pending.append(job_id)
        self._wake.set()

    async def flush(self) -> None:
        """Mark what is pending now; on a database error it stays pending for the next try."""
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            async with self._pool.connection() as conn:
                await jobs.mark_published(conn, batch)
        except DATABASE_UNAVAILABLE as exc:
            # Not lost: unmarked jobs are published again by the relay, at worst.
            log.warning("%d confirmed jobs not marked published yet: %s", len(batch), exc)
            self._pending[:0] = batch
            await asyncio.sleep(1)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.flush()
            if self._pending:
                self._wake.set()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.flush()


class OutboxRelay(Periodic):
    """Publishes jobs recorded over `grace_s` ago and still unpublished, every `interval_s`."""

    name = "offload-outbox-relay"

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        publisher: Publisher,
        *,
        grace_s: float,
        interval_s: float,
        batch: int = 100,
    ) -> None:
        super().__init__(interval_s)
        self._pool = pool
        self._publisher = publisher
        self._grace_s = grace_s
        self._batch = batch

    async def run_once(self) -> int:
        """One round: publish (with confirms) and mark what is due; how many were published."""
        published: list[UUID] = []
        try:
            async with self._pool.connection() as conn, conn.transaction():
                for job in await jobs.take_unpublished(conn, self._grace_s, self._batch):
                    try:
                        await self._publisher.publish(message_for(job), routing_key=job["queue"])
                    except BrokerUnavailable as exc:
                        log.warning("outbox relay paused, the broker is unavailable: %s", exc)
                        break
                    published.append(job["id"])
                if published:
                    await jobs.mark_published(conn, published)
        except DATABASE_UNAVAILABLE as exc:
            log.warning("outbox relay skipped a round, the database is unavailable: %s", exc)
            return 0
        if published:
            log.warning("outbox relay published %d jobs their request left behind", len(published))
        return len(published)
