import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import REGISTRY

from services.analyzer.config import AnalyzerSettings
from services.analyzer.crawler import crawl_blog
from services.analyzer.errors import (
    BlockedAddress,
    BlogNotFound,
    FetchFailed,
    NotABlog,
    TransientFetchError,
)
from services.analyzer.models import BlogSnapshot
from services.analyzer.scoring import SCORED_METRICS, score_blog
from tests.support.blogs import Post
from tests.support.blogserver import BlogServer

SETTINGS = AnalyzerSettings(crawl_allow_private=True)


@pytest.fixture
def server() -> Iterator[BlogServer]:
    with BlogServer() as blog_server:
        yield blog_server


def metrics_of(snapshot: BlogSnapshot) -> dict[str, Any]:
    result = score_blog(
        snapshot, SETTINGS.score_weights, SETTINGS.score_references, datetime.now(UTC)
    )
    metrics: dict[str, Any] = result["metrics"]
    return metrics


def newest(server: BlogServer, name: str) -> Post:
    return max(server.blog(name).posts, key=lambda post: post.published)


def request_path(server: BlogServer, name: str, post: Post) -> str:
    return f"/{name}{server.blog(name).post_path(post)}"


@pytest.mark.parametrize("name", ["wordpress", "atom", "sparse"])
async def test_crawl_reports_exactly_what_the_blog_publishes(server: BlogServer, name: str) -> None:
    progress: list[tuple[int, int]] = []
    snapshot = await crawl_blog(
        server.url(name), SETTINGS, on_progress=lambda done, total: progress.append((done, total))
    )
    expected = server.blog(name).expected_metrics()
    assert metrics_of(snapshot) == expected
    total = expected["posts_analyzed"]
    assert progress == [(done, total) for done in range(total + 1)]

    result = score_blog(
        snapshot, SETTINGS.score_weights, SETTINGS.score_references, datetime.now(UTC)
    )
    published = {key for key in SCORED_METRICS if expected[key] is not None}
    assert set(result["breakdown"]) == published
    assert 0 < result["score"] <= 100


async def test_wordpress_snapshot_details(server: BlogServer) -> None:
    snapshot = await crawl_blog(server.url("wordpress"), SETTINGS)
    blog = server.blog("wordpress")
    assert snapshot.home_url == server.url("wordpress")
    assert snapshot.feed_url == f"{server.url('wordpress')}/feed/"
    assert (snapshot.subscribers, snapshot.daily_visitors) == (
        blog.subscribers,
        blog.daily_visitors,
    )
    wanted = sorted(blog.posts, key=lambda post: post.published, reverse=True)[:30]
    assert [post.url for post in snapshot.posts] == [
        server.post_url("wordpress", post) for post in wanted
    ]
    first = snapshot.posts[0]
    assert (first.comments, first.feed_comments, first.likes, first.views) == (
        wanted[0].page_comments,
        wanted[0].feed_comments,
        wanted[0].likes,
        wanted[0].views,
    )
    # 45 posts, 25 a feed page: the second page is needed for 30 posts, a third is not.
    assert server.hits("/wordpress/feed/") == 1
    assert server.hits("/wordpress/feed/?paged=2") == 1
    assert server.hits("/wordpress/feed/?paged=3") == 0
    assert server.hits("/wordpress/comments/feed/") == 0
    assert server.hits(request_path(server, "wordpress", wanted[0])) == 1
    assert server.hits(request_path(server, "wordpress", blog.posts[-1])) == 0


async def test_atom_follows_next_links_only_as_far_as_needed(server: BlogServer) -> None:
    snapshot = await crawl_blog(server.url("atom"), SETTINGS)
    assert len(snapshot.posts) == 30
    assert snapshot.feed_url == f"{server.url('atom')}/feed.atom"
    assert [server.hits(f"/atom/feed.atom?page={n}") for n in (2, 3, 4)] == [1, 1, 0]


async def test_missing_blog_is_blog_not_found(server: BlogServer) -> None:
    with pytest.raises(BlogNotFound, match="HTTP 404") as caught:
        await crawl_blog(server.url("missing"), SETTINGS)
    assert caught.value.code == "blog_not_found" and not caught.value.retryable


async def test_site_without_feed_is_not_a_blog(server: BlogServer) -> None:
    with pytest.raises(NotABlog, match="no RSS or Atom feed") as caught:
        await crawl_blog(server.url("notablog"), SETTINGS)
    assert caught.value.code == "no_feed"
    # /feed exists but is an HTML page; every fallback path was tried once.
    for path in ("feed", "rss", "atom.xml", "feed.xml", "index.xml"):
        assert server.hits(f"/notablog/{path}") == 1


async def test_one_503_on_a_post_page_is_retried_within_the_crawl(server: BlogServer) -> None:
    path = request_path(server, "wordpress", newest(server, "wordpress"))
    server.fail_next(path, 503, times=1)
    snapshot = await crawl_blog(server.url("wordpress"), SETTINGS)
    assert metrics_of(snapshot) == server.blog("wordpress").expected_metrics()
    assert server.hits(path) == 2


async def test_two_503s_fail_the_crawl_as_transient_then_a_retry_succeeds(
    server: BlogServer,
) -> None:
    path = request_path(server, "wordpress", newest(server, "wordpress"))
    server.fail_next(path, 503, times=2)
    with pytest.raises(TransientFetchError, match="HTTP 503") as caught:
        await crawl_blog(server.url("wordpress"), SETTINGS)
    assert caught.value.retryable and caught.value.code == "fetch_transient"
    assert server.hits(path) == 2  # one quick retry, no storm

    # What the task does after its backoff: crawl the whole blog again.
    snapshot = await crawl_blog(server.url("wordpress"), SETTINGS)
    assert metrics_of(snapshot) == server.blog("wordpress").expected_metrics()
    assert server.hits(path) == 3


async def test_transient_home_failure_fails_fast(server: BlogServer) -> None:
    server.fail_next("/sparse/", 429, times=2)
    with pytest.raises(TransientFetchError, match="HTTP 429"):
        await crawl_blog(server.url("sparse"), SETTINGS)
    assert server.total_hits() == 4  # (/sparse -> 301, /sparse/ -> 429) twice


async def test_post_page_404_keeps_feed_data(server: BlogServer) -> None:
    post = newest(server, "wordpress")
    server.fail_next(request_path(server, "wordpress", post), 404)
    snapshot = await crawl_blog(server.url("wordpress"), SETTINGS)
    first = snapshot.posts[0]
    assert (first.title, first.published) == (post.title, post.published)
    assert (first.comments, first.likes, first.views) == (None, None, None)
    assert first.feed_comments == post.feed_comments
    expected = server.blog("wordpress").expected_metrics(missing_pages={post.slug})
    assert metrics_of(snapshot) == expected


@pytest.mark.parametrize("cap", [1, 3])
async def test_per_host_concurrency_cap_holds(server: BlogServer, cap: int) -> None:
    server.latency_s = 0.03
    settings = AnalyzerSettings(crawl_allow_private=True, crawl_per_host_concurrency=cap)
    await crawl_blog(server.url("atom"), settings)
    assert server.max_in_flight == cap


async def test_private_addresses_are_refused_by_default(server: BlogServer) -> None:
    with pytest.raises(BlockedAddress, match=r"127\.0\.0\.1") as caught:
        await crawl_blog(server.url("wordpress"), AnalyzerSettings())
    assert caught.value.code == "blocked_address" and not caught.value.retryable
    assert server.total_hits() == 0


async def test_many_wordpress_blogs_on_one_server() -> None:
    with BlogServer(blogs=[], count=3, latency_s=0.01) as many:
        snapshots = await asyncio.gather(
            *(crawl_blog(many.url(f"wp{i}"), SETTINGS) for i in range(3))
        )
        for i, snapshot in enumerate(snapshots):
            assert metrics_of(snapshot) == many.blog(f"wp{i}").expected_metrics()
        assert len({snapshot.posts[0].title for snapshot in snapshots}) == 3


async def test_fetch_outcomes_are_counted_by_status(server: BlogServer) -> None:
    def count(status: str) -> float:
        value = REGISTRY.get_sample_value(
            "offload_analyzer_pages_fetched_total", {"status": status}
        )
        return value or 0.0

    def crawls() -> float:
        return REGISTRY.get_sample_value("offload_analyzer_crawl_duration_seconds_count") or 0.0

    before = {status: count(status) for status in ("200", "301", "404", "503")}
    crawls_before = crawls()
    server.fail_next(request_path(server, "sparse", newest(server, "sparse")), 503)
    await crawl_blog(server.url("sparse"), SETTINGS)
    # /sparse -> 301; home, feed and 8 posts -> 200; one injected 503 before its retry.
    assert count("301") - before["301"] == 1
    assert count("200") - before["200"] == 10
    assert count("503") - before["503"] == 1
    assert count("404") == before["404"]
    assert crawls() == crawls_before + 1


async def test_non_retryable_fetch_failures(server: BlogServer) -> None:
    server.fail_next("/sparse/", 403)
    with pytest.raises(FetchFailed, match="HTTP 403"):
        await crawl_blog(server.url("sparse"), SETTINGS)

    small = AnalyzerSettings(crawl_allow_private=True, crawl_max_page_bytes=1_000)
    with pytest.raises(FetchFailed, match="exceeds the 1000 byte limit"):
        await crawl_blog(server.url("sparse"), small)

    no_redirects = AnalyzerSettings(crawl_allow_private=True, crawl_max_redirects=0)
    with pytest.raises(FetchFailed, match="more than 0 redirects") as caught:
        await crawl_blog(server.url("sparse"), no_redirects)
    assert caught.value.code == "fetch_failed" and not caught.value.retryable


async def test_timeout_is_transient_and_not_retried_in_the_crawl(server: BlogServer) -> None:
    server.latency_s = 0.5
    impatient = AnalyzerSettings(crawl_allow_private=True, crawl_timeout_s=0.1)
    with pytest.raises(TransientFetchError, match="ReadTimeout"):
        await crawl_blog(server.url("sparse"), impatient)
    assert server.hits("/sparse") == 1
