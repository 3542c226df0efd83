"""HTTP fetching for the crawler: a guarded client and one GET with manual redirects."""

import asyncio
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from urllib.parse import urljoin, urlsplit

import httpx

from services.analyzer.config import AnalyzerSettings
from services.analyzer.errors import AnalyzerError, FetchFailed, TransientFetchError
from services.analyzer.metrics import PAGES_FETCHED
from services.analyzer.ssrf import GuardedNetworkBackend, GuardedTransport, Resolver, system_resolve

log = logging.getLogger(__name__)

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MISSING_STATUSES = frozenset({404, 410})
_ACCEPT = (
    "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
    "application/xml;q=0.9,*/*;q=0.8"
)
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# The content codings the crawler decodes itself (see _Inflater) and asks servers for; zlib
# window bits per coding. Brotli and zstd are not installed, so they are neither asked for nor
# accepted.
_ZLIB_WBITS = {
    "gzip": 16 + zlib.MAX_WBITS,
    "x-gzip": 16 + zlib.MAX_WBITS,
    "deflate": zlib.MAX_WBITS,
}
ACCEPT_ENCODING = "gzip, deflate"
# Most bytes inflated in one go: a page is never inflated more than this past its cap.
DECODE_STEP_BYTES = 64 * 1024


@dataclass(frozen=True)
class Page:
    """A fetched response: final URL after redirects, status, media type and capped body."""

    url: str
    status: int
    content_type: str
    charset: str | None
    body: bytes

    @property
    def missing(self) -> bool:
        """True when the server said the page does not exist (404 or 410)."""
        return self.status in MISSING_STATUSES

    @property
    def is_html(self) -> bool:
        """True for HTML responses, or untyped ones that look like HTML."""
        if self.content_type in _HTML_TYPES:
            return True
        head = self.body[:512].lstrip().lower()
        return not self.content_type and head.startswith((b"<!doctype html", b"<html"))

    @property
    def text(self) -> str:
        """The body decoded with the declared charset, falling back to UTF-8."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


def build_client(
    settings: AnalyzerSettings,
    *,
    resolver: Resolver = system_resolve,
    network_backend: GuardedNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """Build the crawler's HTTP client: timeouts, user agent, limits and the SSRF guard."""
    backend = network_backend or GuardedNetworkBackend(
        allow_private=settings.crawl_allow_private, resolver=resolver
    )
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    return httpx.AsyncClient(
        transport=GuardedTransport(backend, limits=limits),
        timeout=httpx.Timeout(settings.crawl_timeout_s),
        headers={
            "User-Agent": settings.crawl_user_agent,
            "Accept": _ACCEPT,
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        follow_redirects=False,
        # Environment proxies would connect on our behalf and bypass the guard.
        trust_env=False,
    )


def _media_type(header: str | None) -> tuple[str, str | None]:
    if not header:
        return "", None
    message = Message()
    message["content-type"] = header
    charset = message.get_param("charset")
    return message.get_content_type().lower(), charset if isinstance(charset, str) else None


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    max_redirects: int,
    max_bytes: int,
    deadline_s: float | None = None,
) -> Page:
    """GET url, following redirects by hand; return 2xx, 404 and 410 pages, raise otherwise."""
    # httpx timeouts bound each connect and read; the deadline bounds a slow-dripping page.
    try:
        async with asyncio.timeout(deadline_s):
            return await _fetch(client, url, max_redirects=max_redirects, max_bytes=max_bytes)
    except TimeoutError as exc:
        PAGES_FETCHED.labels(status="error").inc()
        raise TransientFetchError(f"{url}: not received within {deadline_s} s") from exc


async def _fetch(
    client: httpx.AsyncClient, url: str, *, max_redirects: int, max_bytes: int
) -> Page:
    current = url
    for _hop in range(max_redirects + 1):
        if urlsplit(current).scheme not in ("http", "https"):
            raise FetchFailed(f"{url}: refused to fetch non-http(s) URL {current!r}")
        responded = False
        try:
            async with client.stream("GET", current) as response:
                responded = True
                PAGES_FETCHED.labels(status=str(response.status_code)).inc()
                status = response.status_code
                if status in REDIRECT_STATUSES:
                    location = response.headers.get("location")
                    if not location:
                        raise FetchFailed(f"{current}: HTTP {status} redirect without Location")
                    current = urljoin(current, location)
                    continue
                _raise_for_status(current, response)
                body = await _read_capped(current, response, max_bytes)
                content_type, charset = _media_type(response.headers.get("content-type"))
                return Page(str(response.url), status, content_type, charset, body)
        except AnalyzerError:
            _count_error(responded)  # e.g. the SSRF guard refused to connect
            raise
        except httpx.InvalidURL as exc:
            _count_error(responded)
            raise FetchFailed(f"{current}: invalid URL: {exc}") from exc
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            _count_error(responded)
            kind = type(exc).__name__
            raise TransientFetchError(f"{current}: {kind}: {exc or 'no detail'}") from exc
        except httpx.TransportError as exc:
            _count_error(responded)
            raise FetchFailed(f"{current}: {type(exc).__name__}: {exc}") from exc
    raise FetchFailed(f"{url}: more than {max_redirects} redirects (last to {current})")


def _count_error(responded: bool) -> None:
    if not responded:
        PAGES_FETCHED.labels(status="error").inc()


def _raise_for_status(url: str, response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300 or status in MISSING_STATUSES:
        return
    if status == 429 or status >= 500:
        retry_after = response.headers.get("retry-after")
        hint = f" (Retry-After: {retry_after})" if retry_after else ""
        raise TransientFetchError(f"{url}: HTTP {status}{hint}")
    raise FetchFailed(f"{url}: HTTP {status}")


async def _read_capped(url: str, response: httpx.Response, max_bytes: int) -> bytes:
    inflater = _inflater(url, response)
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"{url}: body of {declared} bytes exceeds the {max_bytes} byte limit")
    chunks: list[bytes] = []
    received = size = 0
    # Raw bytes as they arrive, decoded here a step at a time: httpx's own decoding inflates a
    # whole read at once, so a few kilobytes of gzip could become gigabytes before the check.
    async for raw in response.aiter_raw():
        received += len(raw)
        if received > max_bytes:
            raise _too_large(url, max_bytes)
        for chunk in (raw,) if inflater is None else inflater.decode(raw):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(url, max_bytes)
            chunks.append(chunk)
    if inflater is not None:
        chunks.append(inflater.flush())
        if size + len(chunks[-1]) > max_bytes:
            raise _too_large(url, max_bytes)
    return b"".join(chunks)


def _too_large(url: str, max_bytes: int) -> FetchFailed:
    return FetchFailed(f"{url}: body exceeds the {max_bytes} byte limit")


def _inflater(url: str, response: httpx.Response) -> "_Inflater | None":
    """The decoder of the response's one content coding; None for none or identity."""
    codings = [
        coding.strip().lower()
        for coding in response.headers.get_list("content-encoding", split_commas=True)
        if coding.strip()
    ]
    if len(codings) > 1:
        # Each stacked coding multiplies a bomb's ratio; no real server stacks them.
        listed = ", ".join(codings)
        raise FetchFailed(f"{url}: refused a body with more than one content coding ({listed})")
    if not codings or codings[0] == "identity":
        return None
    if codings[0] not in _ZLIB_WBITS:
        raise FetchFailed(f"{url}: unsupported Content-Encoding {codings[0]!r}")
    return _Inflater(url, codings[0])


class _Inflater:
    """Decodes a gzip or deflate body as it arrives, in steps of at most DECODE_STEP_BYTES."""

    def __init__(self, url: str, coding: str) -> None:
        self._url = url
        self._coding = coding
        self._zlib = zlib.decompressobj(_ZLIB_WBITS[coding])
        self._started = False

    def decode(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces of data; what a caller stops reading is never inflated."""
        while data:
            yield self._step(data)
            # Input the step had no room for; once the stream has ended, bytes after it go
            # to unused_data and are ignored, as browsers do.
            data = self._zlib.unconsumed_tail

    def flush(self) -> bytes:
        """What is left once the body ended (a truncated stream is read as far as it goes)."""
        try:
            return self._zlib.flush()
        except zlib.error as exc:
            raise self._undecodable(exc) from exc

    def _step(self, data: bytes) -> bytes:
        try:
            try:
                out = self._zlib.decompress(data, DECODE_STEP_BYTES)
            except zlib.error:
                if self._coding != "deflate" or self._started:
                    raise
                # Some servers send raw deflate without the zlib wrapper HTTP asks for.
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
                out = self._zlib.decompress(data, DECODE_STEP_BYTES)
        except zlib.error as exc:
            raise self._undecodable(exc) from exc
        self._started = True
        return out

    def _undecodable(self, exc: zlib.error) -> FetchFailed:
        return FetchFailed(f"{self._url}: {self._coding} body could not be decoded: {exc}")
