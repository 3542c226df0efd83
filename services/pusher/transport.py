"""A lean keep-alive HTTP/1.1 client for one origin: asyncio protocols and httptools' parser.

httpx spends ~0.6-1.2 ms of CPU per request in its connection pool (it rescans every pooled
connection on each request), which caps a worker near 1,000 pushes/s; this spends tens of
microseconds. It speaks only what FCM's send endpoint needs: POST with a body, responses with
Content-Length or chunked bodies, TLS for https, one request at a time per connection.
"""

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools


class TransportTimeout(Exception):
    """No complete response (or no connection) within the timeout."""


class TransportFailure(Exception):
    """The connection could not be opened, broke, or carried something that is not HTTP."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    retry_after: str | None


class _Connection(asyncio.Protocol):
    """One keep-alive connection; the parser's callbacks fill in the response in hand."""

    def __init__(self) -> None:
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._body: list[bytes] = []
        self._header: bytes = b""
        self._retry_after: str | None = None
        self._keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(TransportFailure(f"malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(TransportFailure(f"connection lost: {exc!r}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"retry-after":
            self._retry_after = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        response = Response(self._parser.get_status_code(), b"".join(self._body), self._retry_after)
        self._body, self._retry_after = [], None
        if not self._keep_alive:
            self.close()
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    async def request(self, data: bytes, limit_s: float) -> Response:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        self._waiter = waiter
        self.transport.write(data)
        timer = loop.call_later(limit_s, self._time_out, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _time_out(self, waiter: asyncio.Future[Response]) -> None:
        if not waiter.done():
            waiter.set_exception(TransportTimeout("no response in time"))
        self.close()  # a late answer must not be read as the next request's

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Http1Client:
    """POSTs to one origin over at most `size` keep-alive connections."""

    def __init__(self, base_url: str, size: int, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self._ssl = ssl.create_default_context()
            self._ssl.set_alpn_protocols(["http/1.1"])
        default_port = 443 if parts.scheme == "https" else 80
        self._host_header = parts.netloc if self.port != default_port else self.host
        self.size = size
        self.timeout_s = timeout_s
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    def request_bytes(self, path: str, headers: dict[str, str], body: bytes) -> bytes:
        """The bytes of one POST (headers and body)."""
        lines = [f"POST {path} HTTP/1.1", f"Host: {self._host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    async def post(self, data: bytes) -> Response:
        """Send request bytes from request_bytes() and read the response."""
        conn = await self._acquire()
        try:
            return await conn.request(data, self.timeout_s)
        finally:
            self._release(conn)

    async def aclose(self) -> None:
        while self._idle:
            self._idle.popleft().close()

    async def _acquire(self) -> _Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()  # most recently used: warm, least likely closed
                if not conn.closed:
                    return conn
                self._open -= 1
            if self._open < self.size:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    raise
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout_s):
                _, conn = await loop.create_connection(
                    _Connection,
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                )
        except TimeoutError as exc:
            raise TransportTimeout(f"connect to {self.host}:{self.port} timed out") from exc
        except OSError as exc:
            raise TransportFailure(f"connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.closed:
            self._open -= 1
        else:
            self._idle.append(conn)
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break
