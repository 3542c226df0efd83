"""One crawl of a blog: home page, feed, then the post pages with a per-host concurrency cap."""

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx

from services.analyzer.config import AnalyzerSettings
from services.analyzer.errors import (
    BlockedAddress,
    BlogNotFound,
    FetchFailed,
    NotABlog,
    TransientFetchError,
)
from services.analyzer.extract import PostPageMetrics, extract_home_metrics, extract_post_metrics
from services.analyzer.feeds import Fetcher, discover_feed, read_feed
from services.analyzer.fetch import Page, build_client, fetch
from services.analyzer.metrics import CRAWL_DURATION, POSTS_PER_CRAWL
from services.analyzer.models import BlogSnapshot, FeedPost, PostSnapshot
from services.common.contracts.blog_url import normalize_blog_url

log = logging.getLogger(__name__)

# A 5xx, 429 or dropped connection gets one quick second try per page; anything longer is the
# task's job (it retries the whole crawl with growing delays). Timeouts are not retried here.
QUICK_RETRY_DELAY_S = 0.2
# A page, redirects included, must arrive within this many crawl_timeout_s.
PAGE_DEADLINE_FACTOR = 2

ProgressCallback = Callable[[int, int], None]


async def crawl_blog(
    url: str,
    settings: AnalyzerSettings,
    *,
    client: httpx.AsyncClient | None = None,
    on_progress: ProgressCallback | None = None,
) -> BlogSnapshot:
    """Crawl a blog and return what it publishes; on_progress(done, total) counts post pages."""
    home_url = normalize_blog_url(url)
    with CRAWL_DURATION.time():
        if client is not None:
            snapshot = await _crawl(home_url, settings, client, on_progress)
        else:
            async with build_client(settings) as own_client:
                snapshot = await _crawl(home_url, settings, own_client, on_progress)
    POSTS_PER_CRAWL.observe(len(snapshot.posts))
    log.info("crawled %s: %d posts from %s", home_url, len(snapshot.posts), snapshot.feed_url)
    return snapshot


def _page_fetcher(client: httpx.AsyncClient, settings: AnalyzerSettings) -> Fetcher:
    async def fetch_once(url: str) -> Page:
        return await fetch(
            client,
            url,
            max_redirects=settings.crawl_max_redirects,
            max_bytes=settings.crawl_max_page_bytes,
            deadline_s=PAGE_DEADLINE_FACTOR * settings.crawl_timeout_s,
        )

    async def fetch_page(url: str) -> Page:
        try:
            return await fetch_once(url)
        except TransientFetchError as exc:
            if isinstance(exc.__cause__, httpx.TimeoutException | TimeoutError):
                raise
            log.info("retrying %s once: %s", url, exc)
        await asyncio.sleep(QUICK_RETRY_DELAY_S)
        return await fetch_once(url)

    return fetch_page


async def _crawl(
    home_url: str,
    settings: AnalyzerSettings,
    client: httpx.AsyncClient,
    on_progress: ProgressCallback | None,
) -> BlogSnapshot:
    fetch_page = _page_fetcher(client, settings)
    home = await fetch_page(home_url)
    if home.missing:
        raise BlogNotFound(f"{home.url}: home page answered HTTP {home.status}")
    if not home.is_html:
        kind = home.content_type or "untyped content"
        raise NotABlog(f"{home.url}: home page is {kind}, not HTML")
    home_metrics = extract_home_metrics(home.text, home.url)
    first = await discover_feed(home, fetch_page)
    feed_posts = await read_feed(
        first,
        fetch_page,
        max_posts=settings.crawl_max_posts,
        max_pages=settings.crawl_max_feed_pages,
    )
    posts = await _crawl_posts(
        feed_posts, fetch_page, settings.crawl_per_host_concurrency, on_progress
    )
    return BlogSnapshot(
        home_url=home_url,
        feed_url=first.url,
        posts=tuple(posts),
        subscribers=home_metrics.subscribers,
        daily_visitors=home_metrics.daily_visitors,
        fetched_at=datetime.now(UTC),
    )


async def _crawl_posts(
    feed_posts: list[FeedPost],
    fetch_page: Fetcher,
    per_host: int,
    on_progress: ProgressCallback | None,
) -> list[PostSnapshot]:
    total = len(feed_posts)
    done = 0
    semaphores: dict[str, asyncio.Semaphore] = {}

    async def crawl_one(post: FeedPost) -> PostSnapshot:
        nonlocal done
        host = urlsplit(post.url).netloc.lower()
        async with semaphores.setdefault(host, asyncio.Semaphore(per_host)):
            metrics = await _post_metrics(post.url, fetch_page)
        done += 1
        if on_progress is not None:
            on_progress(done, total)
        return PostSnapshot(
            url=post.url,
            title=post.title,
            published=post.published,
            comments=metrics.comments,
            feed_comments=post.comments,
            likes=metrics.likes,
            views=metrics.views,
        )

    if on_progress is not None:
        on_progress(0, total)
    tasks = [asyncio.create_task(crawl_one(post)) for post in feed_posts]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # One page failed for good (or we were cancelled): stop the others before re-raising.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _post_metrics(url: str, fetch_page: Fetcher) -> PostPageMetrics:
    try:
        page = await fetch_page(url)
    except (BlogNotFound, BlockedAddress, FetchFailed) as exc:
        # The post keeps its feed data; only a transient failure fails the crawl.
        log.warning("post page skipped, %s: %s", exc.code, exc)
        return PostPageMetrics()
    if page.missing:
        log.info("post page %s answered %d; keeping its feed data", url, page.status)
        return PostPageMetrics()
    if not page.is_html:
        return PostPageMetrics()
    # lxml parsing is CPU work; keep the event loop free for the other downloads.
    return await asyncio.to_thread(extract_post_metrics, page.text, page.url)
