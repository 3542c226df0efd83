"""The gateway's housekeeping: expired idempotency keys are deleted, not kept forever.

Keys stop counting after `OFFLOAD_IDEMPOTENCY_TTL_S` whether or not they are deleted (every
lookup checks their age); the sweep only keeps the table at one TTL's worth of rows. Every
gateway process runs it; the delete skips rows another process holds.
"""

import asyncio
import contextlib
import logging
import random

import psycopg
from psycopg_pool import PoolTimeout

from services.gateway.jobs.idempotency import IdempotencyKeys

log = logging.getLogger(__name__)


class Janitor:
    """Runs `IdempotencyKeys.purge_expired` every `interval_s` (±10%) until closed."""

    def __init__(self, keys: IdempotencyKeys, *, ttl_s: int, interval_s: float) -> None:
        self._keys = keys
        self._ttl_s = ttl_s
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="offload-janitor")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def sweep(self) -> int:
        """One sweep; a database that is unreachable now is tried again next round."""
        try:
            purged = await self._keys.purge_expired(self._ttl_s)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("expired idempotency keys not purged this round: %s", exc)
            return 0
        if purged:
            log.info("purged %d expired idempotency keys", purged)
        return purged

    async def _run(self) -> None:
        while True:
            # Jitter spreads the sweeps of a gateway's worker processes apart.
            await asyncio.sleep(self._interval_s * random.uniform(0.9, 1.1))
            await self.sweep()
