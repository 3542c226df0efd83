import ipaddress
import socket
from collections.abc import Iterable, Iterator, Sequence

import httpcore
import httpx
import pytest

from services.analyzer.config import AnalyzerSettings
from services.analyzer.errors import BlockedAddress, BlogNotFound
from services.analyzer.fetch import build_client, fetch
from services.analyzer.ssrf import (
    GuardedNetworkBackend,
    Resolver,
    is_blocked_ip,
    resolve_checked,
)
from tests.support.blogs import Blog, Response
from tests.support.blogserver import BlogServer

PUBLIC_IP = "93.184.216.34"


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "100.127.255.254",
        "0.0.0.0",
        "224.0.0.251",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
    ],
)
def test_blocks_non_public_addresses(address: str) -> None:
    assert is_blocked_ip(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", [PUBLIC_IP, "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_allows_public_addresses(address: str) -> None:
    assert not is_blocked_ip(ipaddress.ip_address(address))


def fake_resolver(table: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host in table:
            return table[host]
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return [host]

    return resolve


async def test_refuses_host_when_any_address_is_private() -> None:
    resolver = fake_resolver({"mixed.test": [PUBLIC_IP, "10.0.0.9"]})
    with pytest.raises(BlockedAddress, match=r"10\.0\.0\.9"):
        await resolve_checked("mixed.test", 443, allow_private=False, resolver=resolver)


async def test_allow_private_lets_private_addresses_through() -> None:
    resolver = fake_resolver({"intranet.test": ["10.0.0.9"]})
    assert await resolve_checked("intranet.test", 80, allow_private=True, resolver=resolver) == [
        "10.0.0.9"
    ]


async def test_unknown_host_is_blog_not_found() -> None:
    with pytest.raises(BlogNotFound, match="does not resolve"):
        await resolve_checked("nope.test", 80, allow_private=False, resolver=fake_resolver({}))


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Connects PUBLIC_IP to the loopback test server and records every connect."""

    def __init__(self) -> None:
        self.connects: list[str] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append(host)
        target = "127.0.0.1" if host == PUBLIC_IP else host
        return await self._real.connect_tcp(target, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


class RedirectingBlog(Blog):
    """Answers /<name>/go?to=URL with a 302 to URL."""

    def __init__(self) -> None:
        self.name = "redirect"
        self.posts = []

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        if path == "/go":
            return Response(302, headers=(("Location", query["to"]),))
        return Response(200, b"<html><body>public page</body></html>")


@pytest.fixture
def server() -> Iterator[BlogServer]:
    with BlogServer(blogs=[RedirectingBlog()]) as blog_server:
        yield blog_server


def guarded_client(settings: AnalyzerSettings, inner: RecordingBackend) -> httpx.AsyncClient:
    resolver = fake_resolver(
        {
            "public.test": [PUBLIC_IP],
            "intranet.test": ["10.1.2.3"],
            "metadata.test": ["169.254.169.254"],
            "sneaky.test": [PUBLIC_IP, "127.0.0.1"],
        }
    )
    backend = GuardedNetworkBackend(allow_private=False, resolver=resolver, inner=inner)
    return build_client(settings, network_backend=backend)


async def test_public_host_is_fetched_through_its_checked_ip(server: BlogServer) -> None:
    inner = RecordingBackend()
    port = server.base_url.rsplit(":", 1)[1]
    async with guarded_client(AnalyzerSettings(), inner) as client:
        page = await fetch(
            client, f"http://public.test:{port}/redirect/", max_redirects=3, max_bytes=10_000
        )
    assert page.status == 200 and b"public page" in page.body
    # The backend was handed the checked IP, never the name: no second DNS lookup to rebind.
    assert inner.connects == [PUBLIC_IP]


@pytest.mark.parametrize(
    "target",
    [
        "http://intranet.test/admin",
        "http://metadata.test/latest/meta-data/",
        "http://169.254.169.254/latest/meta-data/",
        "http://sneaky.test/",
        "http://127.0.0.1:{port}/redirect/",
        "http://[::1]:{port}/redirect/",
        "http://[::ffff:127.0.0.1]:{port}/redirect/",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
    ],
)
async def test_redirect_from_public_host_to_private_address_is_refused(
    server: BlogServer, target: str
) -> None:
    inner = RecordingBackend()
    port = server.base_url.rsplit(":", 1)[1]
    start = f"http://public.test:{port}/redirect/go?to={target.format(port=port)}"
    async with guarded_client(AnalyzerSettings(), inner) as client:
        with pytest.raises(BlockedAddress, match="non-public address"):
            await fetch(client, start, max_redirects=3, max_bytes=10_000)
    assert server.hits(f"/redirect/go?to={target.format(port=port)}") == 1
    assert inner.connects == [PUBLIC_IP]


async def test_direct_loopback_and_metadata_urls_are_refused(server: BlogServer) -> None:
    async with build_client(AnalyzerSettings()) as client:
        for url in (
            f"{server.base_url}/redirect/",
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:9/",
            "http://localhost:9/",
        ):
            with pytest.raises(BlockedAddress):
                await fetch(client, url, max_redirects=0, max_bytes=1000)
    assert server.total_hits() == 0


async def test_allow_private_reaches_loopback(server: BlogServer) -> None:
    async with build_client(AnalyzerSettings(crawl_allow_private=True)) as client:
        page = await fetch(client, f"{server.base_url}/redirect/", max_redirects=0, max_bytes=1000)
    assert page.status == 200
