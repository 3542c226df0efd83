"""Request body limits per route, enforced by the request guard (middleware.py) before routing.

Every request body may be at most OFFLOAD_BODY_MAX_BYTES (1 MiB), except on the routes listed
in BODY_LIMITS, each with its own setting: a route that takes larger bodies is added there, by
method and path. A JSON body is held whole while it is parsed, so its limit bounds the
gateway's memory; the streamed routes (uploads, device import) hold one chunk at a time, so
theirs bounds the work a request can ask for. Past its limit a body is a 413, before a byte is
read when Content-Length says so, else as soon as the bytes received pass the limit.
"""

from collections.abc import Callable
from dataclasses import dataclass

from services.gateway.config import GatewaySettings
from services.gateway.errors import PayloadTooLarge, UploadTooLarge


@dataclass(frozen=True)
class BodyLimit:
    """The most bytes a route's body may have, and the error past them."""

    max_bytes: int
    error: type[PayloadTooLarge] = PayloadTooLarge

    def exceeded(self) -> PayloadTooLarge:
        """The error for a body past this limit."""
        return self.error(f"request bodies here are limited to {self.max_bytes} bytes")


BODY_LIMITS: dict[tuple[str, str], Callable[[GatewaySettings], BodyLimit]] = {
    ("POST", "/v1/reports"): lambda s: BodyLimit(s.report_body_max_bytes),
    ("POST", "/v1/uploads"): lambda s: BodyLimit(s.upload_max_bytes, UploadTooLarge),
    ("POST", "/v1/devices/import"): lambda s: BodyLimit(s.device_import_max_bytes),
}


class BodyLimits:
    """Each route's body limit, read from the settings once."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.default = BodyLimit(settings.body_max_bytes)
        self.routes = {route: limit(settings) for route, limit in BODY_LIMITS.items()}

    def of(self, method: str, path: str) -> BodyLimit:
        """The limit of the route at `method` `path` (the default for any route not listed)."""
        return self.routes.get((method, path), self.default)
