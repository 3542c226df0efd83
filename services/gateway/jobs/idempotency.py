"""Idempotency keys: the same key (per API key) within its TTL names the same job.

This module is the only code that writes `idempotency_keys`. A key is claimed inside the
transaction that records its job, so the claim commits only with a job the broker confirmed.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.gateway.errors import IdempotencyKeyReused

CLAIM = """
INSERT INTO idempotency_keys (scope, key, request_hash, job_id) VALUES (%s, %s, %s, %s)
ON CONFLICT (scope, key) DO UPDATE
SET request_hash = EXCLUDED.request_hash, job_id = EXCLUDED.job_id, created_at = now()
WHERE idempotency_keys.created_at < now() - make_interval(secs => %s)
RETURNING job_id
"""

FIND = """
SELECT request_hash, job_id FROM idempotency_keys
WHERE scope = %s AND key = %s AND created_at >= now() - make_interval(secs => %s)
"""

# Oldest first, a batch at a time; SKIP LOCKED lets every gateway process sweep at once without
# waiting on each other or on a request that is re-claiming an expired key.
PURGE_EXPIRED = """
DELETE FROM idempotency_keys WHERE (scope, key) IN (
    SELECT scope, key FROM idempotency_keys
    WHERE created_at < now() - make_interval(secs => %s)
    ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
)
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


async def claim(conn: AsyncConnection[Any], idem: Idempotency, job_id: UUID) -> bool:
    """Claim the key for `job_id`; False while a live claim (another job) holds it."""
    cur = await conn.execute(CLAIM, (idem.scope, idem.key, idem.request_hash, job_id, idem.ttl_s))
    return await cur.fetchone() is not None


async def find(conn: AsyncConnection[Any], idem: Idempotency) -> UUID | None:
    """The job a live claim of this key names; IdempotencyKeyReused for another body."""
    cur = await conn.execute(FIND, (idem.scope, idem.key, idem.ttl_s))
    found = await cur.fetchone()
    if found is None:
        return None
    if found[0] != idem.request_hash:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request body"
        )
    job_id: UUID = found[1]
    return job_id


class IdempotencyKeys:
    """Housekeeping of the key table (the janitor's sweep)."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool

    async def purge_expired(self, ttl_s: int, batch: int = 5000) -> int:
        """Delete keys older than `ttl_s`, `batch` rows per statement; how many."""
        purged = 0
        while True:
            async with self._pool.connection() as conn:
                cur = await conn.execute(PURGE_EXPIRED, (ttl_s, batch))
            purged += cur.rowcount
            if cur.rowcount < batch:
                return purged
