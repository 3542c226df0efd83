"""Compressed responses: decoded chunk by chunk under the page cap; bombs, odd codings refused."""

import contextlib
import tracemalloc
from collections.abc import Iterator

import pytest

from services.analyzer.config import AnalyzerSettings
from services.analyzer.crawler import crawl_blog
from services.analyzer.errors import FetchFailed, NotABlog
from services.analyzer.fetch import build_client, fetch
from tests.support.blogs import AtomBlog, EncodedBlog, RawSite, WordPressBlog, encode, gzip_bomb
from tests.support.blogserver import BlogServer

SETTINGS = AnalyzerSettings(crawl_allow_private=True)
CAP = SETTINGS.crawl_max_page_bytes
PAGE = (
    b"<!DOCTYPE html><html><head><title>t</title></head><body>"
    + b"<p>hi</p>" * 500
    + b"</body></html>"
)

BOMB = gzip_bomb(20)  # 20 MiB of zeros in ~20 KB
STACKED_BOMB = gzip_bomb(100, layers=2)  # 100 MiB of zeros in ~330 bytes


def raw(name: str, body: bytes, *encodings: str) -> RawSite:
    return RawSite(name, body, [("Content-Encoding", value) for value in encodings])


@pytest.fixture(scope="module")
def server() -> Iterator[BlogServer]:
    sites = [
        EncodedBlog(WordPressBlog(), ["gzip"]),
        EncodedBlog(AtomBlog(), ["deflate"]),
        EncodedBlog(WordPressBlog(), ["x-gzip"], name="wp-x-gzip"),
        EncodedBlog(WordPressBlog(), ["identity"], name="wp-identity"),
        RawSite("plain", PAGE, []),
        raw("raw-deflate", encode(PAGE, "raw-deflate"), "deflate"),
        raw("bomb", BOMB, "gzip"),
        raw("stacked", STACKED_BOMB, "gzip, gzip"),
        raw("stacked-lines", STACKED_BOMB, "gzip", "gzip"),
        raw("corrupt", encode(PAGE, "gzip")[:10] + b"\xff" * 64, "gzip"),
        *(raw(f"coding-{c}", PAGE, c) for c in ("br", "zstd", "compress", "x-custom")),
    ]
    with BlogServer(sites) as blog_server:
        yield blog_server


async def peak_growth(server: BlogServer, name: str) -> tuple[int, BaseException | None]:
    """The most Python memory a crawl of one site held at once (bytes above the start), and
    what the crawl raised."""
    # A process's first crawl imports modules on the way (~5 MiB): measure a warm crawler.
    with contextlib.suppress(NotABlog):
        await crawl_blog(server.url("plain"), SETTINGS)
    tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        error: BaseException | None = None
        try:
            await crawl_blog(server.url(name), SETTINGS)
        except Exception as exc:
            error = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - start, error


@pytest.mark.parametrize("name", ["wordpress-gzip", "atom-deflate", "wp-x-gzip", "wp-identity"])
async def test_compressed_blogs_are_crawled_like_plain_ones(server: BlogServer, name: str) -> None:
    snapshot = await crawl_blog(server.url(name), SETTINGS)
    assert len(snapshot.posts) == 30
    assert snapshot.subscribers == server.blog(name).subscribers
    assert snapshot.posts[0].likes is not None


async def test_deflate_without_the_zlib_wrapper_is_read_too(server: BlogServer) -> None:
    async with build_client(SETTINGS) as client:
        page = await fetch(client, f"{server.url('raw-deflate')}/", max_redirects=0, max_bytes=CAP)
    assert page.body == PAGE and page.is_html


async def test_a_gzip_bomb_fails_at_the_cap_without_inflating_the_rest(server: BlogServer) -> None:
    growth, error = await peak_growth(server, "bomb")
    assert isinstance(error, FetchFailed), repr(error)
    assert f"exceeds the {CAP} byte limit" in str(error)
    assert error.code == "fetch_failed" and not error.retryable
    assert server.hits("/bomb/") == 1  # a business failure: no quick retry
    # 20 MiB was one read away; at most the cap (+ a chunk) may be inflated, plus small change.
    assert growth < 3 * CAP, f"peak memory grew {growth / 2**20:.1f} MiB"


@pytest.mark.parametrize("name", ["stacked", "stacked-lines"])
async def test_stacked_encodings_are_refused_before_the_body_is_read(
    server: BlogServer, name: str
) -> None:
    growth, error = await peak_growth(server, name)
    assert isinstance(error, FetchFailed), repr(error)
    assert "more than one content coding (gzip, gzip)" in str(error)
    assert not error.retryable
    assert growth < 3 * CAP, f"peak memory grew {growth / 2**20:.1f} MiB"


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "x-custom"])
async def test_unknown_encodings_are_refused(server: BlogServer, coding: str) -> None:
    with pytest.raises(FetchFailed, match=f"unsupported Content-Encoding {coding!r}") as caught:
        await crawl_blog(server.url(f"coding-{coding}"), SETTINGS)
    assert caught.value.code == "fetch_failed" and not caught.value.retryable


async def test_a_corrupt_gzip_body_is_a_business_failure(server: BlogServer) -> None:
    with pytest.raises(FetchFailed, match="gzip body could not be decoded") as caught:
        await crawl_blog(server.url("corrupt"), SETTINGS)
    assert not caught.value.retryable


async def test_the_cap_counts_decoded_bytes_of_a_normal_page(server: BlogServer) -> None:
    small = len(encode(PAGE, "raw-deflate"))
    async with build_client(SETTINGS) as client:
        with pytest.raises(FetchFailed, match=f"exceeds the {small + 1} byte limit"):
            await fetch(
                client, f"{server.url('raw-deflate')}/", max_redirects=0, max_bytes=small + 1
            )


async def test_the_crawler_asks_only_for_the_codings_it_decodes() -> None:
    async with build_client(SETTINGS) as client:
        assert client.headers["accept-encoding"] == "gzip, deflate"
