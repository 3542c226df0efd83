"""The devices table: the only code that writes it.

The gateway registers, unregisters and bulk-imports devices (async); the pusher workers
deactivate the ones FCM reports as unregistered or invalid (sync).
"""

from typing import Any

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row

# (line number, token, platform, user_id, topics or None to keep the device's topics)
Row = tuple[int, str, str, str | None, list[str] | None]

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


async def register(conn: AsyncConnection[Any], params: dict[str, Any]) -> dict[str, Any]:
    """Insert the device, or update and re-activate it; the row, with `created`."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(REGISTER, params)
        row = await cur.fetchone()
    assert row is not None
    return row


async def fetch(conn: AsyncConnection[Any], token: str) -> dict[str, Any] | None:
    """The device with this token, active or not."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_DEVICE, (token,))
        return await cur.fetchone()


async def unregister(conn: AsyncConnection[Any], token: str) -> bool:
    """Deactivate the device; False if no active device has this token."""
    cur = await conn.execute(UNREGISTER, (token,))
    return cur.rowcount > 0


async def upsert_batch(conn: AsyncConnection[Any], copy_data: bytearray) -> int:
    """COPY one batch of import rows into a staging table and upsert them; how many were new."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute(CREATE_STAGE)
        async with cur.copy(COPY_STAGE) as copy:
            await copy.write(copy_data)
        await cur.execute(UPSERT_STAGE)
        found = await cur.fetchone()
    assert found is not None
    return int(found[0])


def deactivate(conn: Connection[Any], device_ids: list[int], reason: str) -> int:
    """Deactivate devices FCM reported as unregistered or invalid."""
    if not device_ids:
        return 0
    cur = conn.execute(
        "UPDATE devices SET active = false, deactivated_reason = %s, deactivated_at = now(), "
        "updated_at = now() WHERE id = ANY(%s) AND active RETURNING id",
        (reason, device_ids),
    )
    return len(cur.fetchall())


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
