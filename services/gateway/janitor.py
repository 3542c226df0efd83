"""The gateway's housekeeping: expired idempotency keys are deleted, not kept forever.

Keys stop counting after `OFFLOAD_IDEMPOTENCY_TTL_S` whether or not they are deleted (every
lookup checks their age); the sweep only keeps the table at one TTL's worth of rows. Every
gateway process runs it; the delete skips rows another process holds.
"""

import logging

import psycopg
from psycopg_pool import PoolTimeout

from services.gateway.jobs.idempotency import IdempotencyKeys
from services.gateway.periodic import Periodic

log = logging.getLogger(__name__)


class Janitor(Periodic):
    """Runs `IdempotencyKeys.purge_expired` every `interval_s` until closed."""

    name = "offload-janitor"

    def __init__(self, keys: IdempotencyKeys, *, ttl_s: int, interval_s: float) -> None:
        super().__init__(interval_s)
        self._keys = keys
        self._ttl_s = ttl_s

    async def run_once(self) -> int:
        return await self.sweep()

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
