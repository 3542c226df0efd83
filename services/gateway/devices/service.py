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
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.gateway.devices.importer import Row, RowParser
from services.gateway.errors import DeviceNotFound

IMPORT_BATCH_ROWS = 10_000

DEVICE_COLUMNS = (
    "token, platform, user_id, topics, active, deactivated_reason, "
    "created_at, updated_at, deactivated_at"
)
REACTIVATE = "active = true, deactivated_reason = NULL, deactivated_at = NULL, updated_at = now()"

REGISTER = f"""
INSERT INTO devices AS d (token, platform, user_id, topics)
VALUES (%(token)s, %(platform)s, %(user_id)s, coalesce(%(topics)s::text[], '{{}}'))
ON CONFLICT (token) DO UPDATE SET
    platform = EXCLUDED.platform, user_id = EXCLUDED.user_id,
    topics = coalesce(%(topics)s::text[], d.topics), {REACTIVATE}
RETURNING {DEVICE_COLUMNS}, d.xmax = 0 AS created
"""

SELECT_DEVICE = f"SELECT {DEVICE_COLUMNS} FROM devices WHERE token = %s"

UNREGISTER = """
UPDATE devices SET active = false, deactivated_reason = 'unregistered',
    deactivated_at = now(), updated_at = now()
WHERE token = %s AND active
"""

CREATE_STAGE = """
CREATE TEMP TABLE device_import (
    line bigint, token text, platform text, user_id text, topics text[]
) ON COMMIT DROP
"""
COPY_STAGE = "COPY device_import (line, token, platform, user_id, topics) FROM STDIN"

# Rows without topics keep the device's topics, hence two inserts. Unchanged devices are not
# rewritten (a re-import of the same fleet writes nothing). Returns how many tokens were new.
UPSERT_STAGE = f"""
WITH latest AS MATERIALIZED (
    SELECT DISTINCT ON (token) token, platform, user_id, topics
    FROM device_import ORDER BY token, line DESC
), replacing AS (
    INSERT INTO devices AS d (token, platform, user_id, topics)
    SELECT token, platform, user_id, topics FROM latest WHERE topics IS NOT NULL
    ON CONFLICT (token) DO UPDATE SET
        platform = EXCLUDED.platform, user_id = EXCLUDED.user_id, topics = EXCLUDED.topics,
        {REACTIVATE}
    WHERE (d.platform, d.user_id, d.topics, d.active)
        IS DISTINCT FROM (EXCLUDED.platform, EXCLUDED.user_id, EXCLUDED.topics, true)
    RETURNING d.xmax = 0 AS created
), keeping AS (
    INSERT INTO devices AS d (token, platform, user_id)
    SELECT token, platform, user_id FROM latest WHERE topics IS NULL
    ON CONFLICT (token) DO UPDATE SET
        platform = EXCLUDED.platform, user_id = EXCLUDED.user_id, {REACTIVATE}
    WHERE (d.platform, d.user_id, d.active)
        IS DISTINCT FROM (EXCLUDED.platform, EXCLUDED.user_id, true)
    RETURNING d.xmax = 0 AS created
)
SELECT (SELECT count(*) FROM replacing WHERE created)
     + (SELECT count(*) FROM keeping WHERE created)
"""


class DeviceRepository:
    """The devices table as the gateway uses it."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool

    async def register(
        self, token: str, platform: str, user_id: str | None, topics: list[str] | None
    ) -> tuple[dict[str, Any], bool]:
        """Insert the device, or update and re-activate it; the row and whether it is new."""
        params = {"token": token, "platform": platform, "user_id": user_id, "topics": topics}
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(REGISTER, params)
            row = await cur.fetchone()
        assert row is not None
        return row, bool(row.pop("created"))

    async def get(self, token: str) -> dict[str, Any]:
        """The device with this token, active or not; DeviceNotFound if there is none."""
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(SELECT_DEVICE, (token,))
            row = await cur.fetchone()
        if row is None:
            raise DeviceNotFound("no device with this token")
        return row

    async def unregister(self, token: str) -> None:
        """Deactivate the device; DeviceNotFound if no active device has this token."""
        async with self._pool.connection() as conn:
            cur = await conn.execute(UNREGISTER, (token,))
        if cur.rowcount == 0:
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
                    batch += copy_text(rows)
                    size += len(rows)
                if size >= IMPORT_BATCH_ROWS:
                    # At most one batch in the database while the next one is parsed.
                    if flushing is not None:
                        inserted += await flushing
                    flushing = asyncio.create_task(self._upsert(batch))
                    batch, size = bytearray(), 0
            batch += copy_text(parser.close())
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
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.execute(CREATE_STAGE)
            async with cur.copy(COPY_STAGE) as copy:
                await copy.write(copy_data)
            await cur.execute(UPSERT_STAGE)
            found = await cur.fetchone()
        assert found is not None
        return int(found[0])


def copy_text(rows: list[Row]) -> bytes:
    """Rows in COPY's text format (validated values: no tabs, newlines or control chars)."""
    return "".join([_copy_line(*row) for row in rows]).encode()


def _copy_line(
    line: int, token: str, platform: str, user_id: str | None, topics: list[str] | None
) -> str:
    if "\\" in token:
        token = token.replace("\\", "\\\\")
    if user_id is None:
        user = "\\N"
    elif "\\" in user_id:
        user = user_id.replace("\\", "\\\\")
    else:
        user = user_id
    # Topic names ([a-zA-Z0-9-_.~%]) need no escaping; quoted so that "NULL" stays a name.
    tags = "\\N" if topics is None else "{" + ",".join(f'"{t}"' for t in topics) + "}"
    return f"{line}\t{token}\t{platform}\t{user}\t{tags}\n"
