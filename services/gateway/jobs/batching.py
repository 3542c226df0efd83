"""Micro-batched job inserts: concurrent submissions share one multi-row INSERT.

Each request still awaits its own row; batches form by themselves while the previous insert
is in flight, so a lone request pays one round trip and a busy gateway pays one per batch.
"""

import asyncio
import logging
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.common import jobs
from services.common.jobs import NewJob

log = logging.getLogger(__name__)


class JobInserter:
    """Queue rows; a few flusher tasks insert whatever is queued, many rows per statement."""

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        *,
        flushers: int = 3,
        max_batch: int = 200,
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._pending: list[tuple[NewJob, asyncio.Future[dict[str, Any]]]] = []
        self._ready = asyncio.Condition()
        self._tasks = [asyncio.create_task(self._flush_forever()) for _ in range(flushers)]

    async def insert(self, row: NewJob) -> dict[str, Any]:
        """Insert one job row (batched with concurrent ones); returns the inserted row."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        async with self._ready:
            self._pending.append((row, future))
            self._ready.notify()
        return await future

    async def _flush_forever(self) -> None:
        while True:
            async with self._ready:
                await self._ready.wait_for(lambda: bool(self._pending))
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
            await self._flush(batch)

    async def _flush(self, batch: list[tuple[NewJob, asyncio.Future[dict[str, Any]]]]) -> None:
        try:
            async with self._pool.connection() as conn:
                inserted = await jobs.insert_many(conn, [row for row, _ in batch])
        except Exception as exc:  # handed to every waiting request: nothing is swallowed
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for row, future in batch:
            if not future.done():
                future.set_result(inserted[row[0]])

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
