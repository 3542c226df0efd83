"""Ids in paths: an id that is not even a UUID was never issued, so it is a 404, not a 422."""

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.gateway.errors import GatewayError

T = TypeVar("T")


def parse_id(value: str | UUID, not_found: type[GatewayError], what: str) -> UUID:
    """`value` as a UUID, or `not_found` ("no <what> with id ...")."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except ValueError:
        raise not_found(f"no {what} with id {value}") from None


async def fetch_or_404(
    pool: AsyncConnectionPool[AsyncConnection[Any]],
    fetch: Callable[[AsyncConnection[Any], UUID], Awaitable[T | None]],
    value: str | UUID,
    not_found: type[GatewayError],
    what: str,
) -> T:
    """What `fetch` finds for the id in `value`, or `not_found` when it finds nothing."""
    uid = parse_id(value, not_found, what)
    async with pool.connection() as conn:
        found = await fetch(conn, uid)
    if found is None:
        raise not_found(f"no {what} with id {value}")
    return found
