"""The device registry as the gateway uses it: register, read, unregister, bulk import.

DELETE unregisters (active = false, reason 'unregistered'); the row stays, so campaign
deliveries keep pointing at a device, and registering the token again re-activates it.
Imports land in batches: each one is COPYed into a temporary table and upserted from it in
one transaction, while the next batch is being parsed. Within a file the last line for a
token wins (DISTINCT ON inside a batch, batch order across them).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.common.store import devices
from services.gateway.devices.importer import RowParser
from services.gateway.errors import DeviceNotFound

IMPORT_BATCH_ROWS = 10_000

IMPORT_BATCH_ROWS = 10_000


class DeviceRegistry:
    """The device registry as the API uses it (writes through services.common.store.devices)."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool

    async def register(
        self, token: str, platform: str, user_id: str | None, topics: list[str] | None
    ) -> tuple[dict[str, Any], bool]:
        """Insert the device, or update and re-activate it; the row and whether it is new."""
        params = {"token": token, "platform": platform, "user_id": user_id, "topics": topics}
        async with self._pool.connection() as conn:
            row = await devices.register(conn, params)
        return row, bool(row.pop("created"))

    async def get(self, token: str) -> dict[str, Any]:
        """The device with this token, active or not; DeviceNotFound if there is none."""
        async with self._pool.connection() as conn:
            row = await devices.fetch(conn, token)
        if row is None:
            raise DeviceNotFound("no device with this token")
        return row

    async def unregister(self, token: str) -> None:
        """Deactivate the device; DeviceNotFound if no active device has this token."""
        async with self._pool.connection() as conn:
            found = await devices.unregister(conn, token)
        if not found:
            raise DeviceNotFound("no active device with this token")

    async def import_stream(self, chunks: AsyncIterator[bytes], parser: RowParser) -> int:
        """Upsert every good row of the stream; how many tokens were new to the registry."""
        inserted = 0
        flushing: asyncio.Task[int] | None = None
        batch = bytearray()
        size = 0
        try:
            async for chunk in chunks:
                rows = parser.feed(chunk)
                if rows:
                    batch += devices.copy_text(rows)
                    size += len(rows)
                if size >= IMPORT_BATCH_ROWS:
                    # At most one batch in the database while the next one is parsed.
                    if flushing is not None:
                        inserted += await flushing
                    flushing = asyncio.create_task(self._upsert(batch))
                    batch, size = bytearray(), 0
            batch += devices.copy_text(parser.close())
            if flushing is not None:
                inserted += await flushing
                flushing = None
            if batch:
                inserted += await self._upsert(batch)
        finally:
            if flushing is not None and not flushing.done():
                # The upload failed: let the batch in flight finish, then report the failure.
                with contextlib.suppress(Exception):
                    await flushing
        return inserted

    async def _upsert(self, copy_data: bytearray) -> int:
        async with self._pool.connection() as conn:
            return await devices.upsert_batch(conn, copy_data)
