"""Pure ASGI middleware (no per-request task overhead): request ids and HTTP metrics; the
request guard (API key and body limit before a route reads the body)."""

import re
import time
import uuid
from http import HTTPStatus
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import request_id_var
from services.gateway.config import GatewaySettings
from services.gateway.deps import bearer_key
from services.gateway.errors import GatewayError, PayloadTooLarge, error_response
from services.gateway.limits import BodyLimit, BodyLimits

HTTP_REQUESTS = Counter(
    "offload_http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "offload_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Label values come from these bounded sets whatever a client sends (each set of values is a
# series Prometheus keeps): the route's template, never the path ("unmatched" when no route
# took it), a standard method or "other", a known status code or its class.
METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"}
)
_STATUSES = frozenset(int(s) for s in HTTPStatus)

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Every route under it declares the ApiKey dependency, and no other route does (checked in
# tests/gateway/test_middleware.py against the OpenAPI document).
KEYED_PREFIX = "/v1/"


class RequestContextMiddleware:
    """Assign/propagate X-Request-ID and record request count and latency per route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            method = method_label(scope["method"])
            HTTP_LATENCY.labels(method, template).observe(time.perf_counter() - started)
            HTTP_REQUESTS.labels(method, template, status_label(status)).inc()
            request_id_var.reset(token)


def method_label(method: str) -> str:
    """The request method as a label: a standard one as sent, anything else "other"."""
    return method if method in METHODS else "other"


def status_label(status: int) -> str:
    """The status as a label: a known code, else its class ("2xx"), else "other"."""
    if status in _STATUSES:
        return str(status)
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _VALID_REQUEST_ID.match(candidate) else None
    return None


class RequestGuardMiddleware:
    """Refuse a request before its route reads the body: 401 on a /v1/ route without an
    accepted key, 413 for a body past the route's limit (limits.py).

    The key, and a declared Content-Length, are checked before the request reaches a route, so
    neither answer waits for a body byte. A body without Content-Length (chunked) is counted as
    the route reads it: the read that passes the limit raises the route's PayloadTooLarge, and
    once the route has unwound (an upload deletes what it stored) the guard sends the 413 in
    place of the route's own answer. Unread body bytes are left to uvicorn, which discards them
    and keeps the connection: closing it would reset a client still sending its body before it
    could read the answer.
    """

    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.accepted_keys = settings.accepted_keys()
        self.limits = BodyLimits(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        limit = self.limits.of(scope["method"], scope["path"])
        try:
            if scope["path"].startswith(KEYED_PREFIX):
                bearer_key(headers.get("authorization"), self.accepted_keys)
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit.max_bytes:
                raise limit.exceeded()
        except GatewayError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await _call_within_limit(self.app, limit, scope, receive, send)


async def _call_within_limit(
    app: ASGIApp, limit: BodyLimit, scope: Scope, receive: Receive, send: Send
) -> None:
    received = 0
    started = answered = False  # started: the route's response began before any overflow
    too_large: PayloadTooLarge | None = None

    async def receive_within_limit() -> Message:
        nonlocal received, too_large
        if too_large is not None:
            raise too_large
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit.max_bytes:
                too_large = limit.exceeded()
                raise too_large
        return message

    async def answer_too_large() -> None:
        nonlocal answered
        assert too_large is not None
        answered = True
        await error_response(too_large)(scope, receive, send)

    async def send_or_answer(message: Message) -> None:
        nonlocal started
        if too_large is None or started:
            started = started or message["type"] == "http.response.start"
            await send(message)
        elif message["type"] == "http.response.start" and not answered:
            await answer_too_large()  # instead of the route's answer to the read that failed

    try:
        await app(scope, receive_within_limit, send_or_answer)
    except PayloadTooLarge as exc:
        if exc is not too_large or started:  # started: the error cuts the response short
            raise
    if too_large is not None and not started and not answered:
        await answer_too_large()
