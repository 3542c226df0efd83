"""Per-process clients for worker tasks (Postgres pool, Redis), created after the fork."""

import os
from dataclasses import dataclass

import redis
from psycopg_pool import ConnectionPool

from services.common.config import ServiceSettings
from services.common.jobs import JobStore


@dataclass(frozen=True)
class Resources:
    """What a task needs to reach the system of record and the cache."""

    pool: ConnectionPool
    redis: "redis.Redis"
    jobs: JobStore


_resources: Resources | None = None
_owner_pid: int | None = None


def resources(settings: ServiceSettings) -> Resources:
    """This process's clients; a forked child never reuses its parent's sockets."""
    global _resources, _owner_pid
    if _resources is None or _owner_pid != os.getpid():
        pool = ConnectionPool(
            settings.database_url,
            min_size=1,
            max_size=4,
            timeout=settings.db_pool_timeout_s,
            open=True,
            # Workers query ranges of big tables (a batch's deliveries, a chunk's rows). Generic
            # plans of prepared statements ignore the range and scan everything so far, which
            # made a 1M-device campaign's cost grow quadratically; custom plans stay per range.
            kwargs={"autocommit": True, "options": "-c plan_cache_mode=force_custom_plan"},
            name="offload-worker",
        )
        client: redis.Redis = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        _resources = Resources(pool=pool, redis=client, jobs=JobStore(pool))
        _owner_pid = os.getpid()
    return _resources


def close() -> None:
    """Close this process's clients (on child shutdown)."""
    global _resources
    if _resources is not None and _owner_pid == os.getpid():
        _resources.pool.close()
        _resources.redis.close()
    _resources = None
