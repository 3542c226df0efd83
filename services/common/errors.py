"""The workers' error tree: the policy for a failed job travels with its error class.

`JobTask` reads it: a `TransientError` is retried with backoff, then dead-lettered; a
`BusinessError` fails the job at once with its code (no retry, no dead letter); anything else,
`OffloadError`s included, is an internal error: the job fails and the message is dead-lettered
with the reason, for an operator to look at and re-drive. A `DEPENDENCY_ERRORS` outage is not
the job's failure at all: before the job starts its message goes back to the queue, while it
runs it is retried like a transient error.
"""

from typing import ClassVar

import psycopg
import redis
from psycopg_pool import PoolTimeout

# Redis or Postgres did not answer (down, unreachable, loading, or slower than its timeout).
# The same classes for the sync and the asyncio clients; BusyLoadingError is a ConnectionError.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
DATABASE_UNAVAILABLE: tuple[type[Exception], ...] = (psycopg.OperationalError, PoolTimeout)
# Either: nothing is wrong with the job, so a worker puts its message back or retries it
# rather than failing it, and the gateway answers 503 rather than 500.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (*REDIS_UNAVAILABLE, *DATABASE_UNAVAILABLE)


class OffloadError(Exception):
    """Base of every failure a worker reports about a job; `code` names it in the job."""

    code: ClassVar[str] = "internal_error"

    @property
    def retryable(self) -> bool:
        """Whether trying again later can help (the class's policy)."""
        return isinstance(self, TransientError)


class TransientError(OffloadError):
    """May succeed later: retried with backoff, then dead-lettered."""


class BusinessError(OffloadError):
    """An expected failure: the job fails at once with this code, without a retry."""
