"""HTTP fetching for the crawler: a guarded client and one GET with manual redirects."""

import asyncio
import logging
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
        headers={"User-Agent": settings.crawl_user_agent, "Accept": _ACCEPT},
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
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailed(f"{url}: body of {declared} bytes exceeds the {max_bytes} byte limit")
    chunks: list[bytes] = []
    size = 0
    # aiter_bytes yields decoded content, so the cap also bounds decompressed size.
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise FetchFailed(f"{url}: body exceeds the {max_bytes} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
