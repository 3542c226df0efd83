"""Ids in paths: an id that is not even a UUID was never issued, so it is a 404, not a 422."""

from uuid import UUID

from services.gateway.errors import GatewayError


def parse_id(value: str | UUID, not_found: type[GatewayError], what: str) -> UUID:
    """`value` as a UUID, or `not_found` ("no <what> with id ...")."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except ValueError:
        raise not_found(f"no {what} with id {value}") from None
