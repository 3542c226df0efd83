"""Feed discovery and reading: RSS 2.0 and Atom, with Atom and WordPress pagination."""

import calendar
import io
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import lxml.etree
import lxml.html

from services.analyzer.errors import NotABlog
from services.analyzer.extract import parse_count
from services.analyzer.fetch import Page
from services.analyzer.models import FeedPost

log = logging.getLogger(__name__)

# GET one URL; the crawler passes fetch() bound to its client and limits.
Fetcher = Callable[[str], Awaitable[Page]]

FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml"})
# Tried, relative to the blog's home, only when the home page links no feed.
FALLBACK_FEED_PATHS = ("feed", "rss", "atom.xml", "feed.xml", "index.xml")


@dataclass(frozen=True)
class FeedPage:
    """One parsed page of a feed and where its next page is, if it says."""

    url: str
    posts: list[FeedPost]
    next_url: str | None
    is_wordpress: bool


def discover_feed_links(html: str, base_url: str) -> list[str]:
    """Return the RSS/Atom feeds a page links with rel=alternate, main feeds before comments."""
    try:
        tree = lxml.html.document_fromstring(
            html.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8")
        )
    except (lxml.etree.ParserError, ValueError):
        return []
    base_hrefs = tree.xpath("//base/@href")
    base = urljoin(base_url, str(base_hrefs[0]).strip()) if base_hrefs else base_url
    found: list[tuple[bool, str]] = []
    for link in tree.xpath("//link[@href]"):
        rels = (link.get("rel") or "").lower().split()
        media_type = (link.get("type") or "").split(";")[0].strip().lower()
        if "alternate" not in rels or media_type not in FEED_TYPES:
            continue
        url = urljoin(base, link.get("href").strip())
        if url in (seen for _, seen in found):
            continue
        label = f"{link.get('title') or ''} {url}".lower()
        found.append(("comment" in label, url))
    # WordPress links "Comments Feed" next to the posts feed; stable sort keeps document order.
    return [url for _, url in sorted(found, key=lambda item: item[0])]


def fallback_feed_urls(home_url: str) -> list[str]:
    """Return the conventional feed locations under a blog's home URL."""
    parts = urlsplit(home_url)
    root = parts.path.rstrip("/") + "/"
    return [
        urlunsplit((parts.scheme, parts.netloc, root + path, "", ""))
        for path in FALLBACK_FEED_PATHS
    ]


def _entry_comments(entry: Any) -> int | None:
    for key in ("slash_comments", "thr_total"):
        count = parse_count(entry.get(key))
        if count is not None:
            return count
    for link in entry.get("links", []):
        if link.get("rel") == "replies":
            count = parse_count(link.get("thr:count") or link.get("count"))
            if count is not None:
                return count
    return None


def _entry_post(entry: Any) -> FeedPost | None:
    link = entry.get("link")
    when = entry.get("published_parsed") or entry.get("updated_parsed")
    if not link or when is None:
        return None
    return FeedPost(
        url=str(link).strip(),
        title=str(entry.get("title", "")).strip(),
        published=datetime.fromtimestamp(calendar.timegm(when), UTC),
        comments=_entry_comments(entry),
    )


def parse_feed(body: bytes, url: str, content_type: str = "") -> FeedPage:
    """Parse one RSS or Atom document; raise NotABlog if it is not a feed."""
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    # A file object, never bytes or str: feedparser treats those as a path or URL to open.
    parsed = feedparser.parse(io.BytesIO(body), response_headers=headers)
    if not parsed.get("version"):
        raise NotABlog(f"{url} is not an RSS or Atom feed")
    entries = parsed.get("entries", [])
    posts = [post for post in map(_entry_post, entries) if post is not None]
    if len(posts) < len(entries):
        log.debug("%s: skipped %d entries without link or date", url, len(entries) - len(posts))
    feed = parsed.get("feed", {})
    next_url = next(
        (link.get("href") for link in feed.get("links", []) if link.get("rel") == "next"), None
    )
    generator = f"{feed.get('generator', '')} {feed.get('generator_detail', {}).get('href', '')}"
    return FeedPage(
        url=url,
        posts=posts,
        next_url=urljoin(url, next_url) if next_url else None,
        is_wordpress="wordpress" in generator.lower(),
    )


def wordpress_page_url(feed_url: str, page: int) -> str:
    """Return the URL of page N of a WordPress feed (`?paged=N`)."""
    parts = urlsplit(feed_url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "paged"]
    query.append(("paged", str(page)))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _try_feed(fetch: Fetcher, url: str) -> FeedPage | None:
    page = await fetch(url)
    if page.missing:
        log.info("feed candidate %s answered %d", url, page.status)
        return None
    try:
        return parse_feed(page.body, page.url, page.content_type)
    except NotABlog:
        log.info("feed candidate %s is not a feed", url)
        return None


async def discover_feed(home: Page, fetch: Fetcher) -> FeedPage:
    """Find the blog's feed from its home page and return the feed's first page."""
    linked = discover_feed_links(home.text, home.url)
    for url in linked or fallback_feed_urls(home.url):
        first = await _try_feed(fetch, url)
        if first is not None:
            return first
    if linked:
        raise NotABlog(f"{home.url}: none of the linked feeds is readable: {', '.join(linked)}")
    raise NotABlog(f"{home.url}: no RSS or Atom feed is linked or at the usual paths")


async def read_feed(
    first: FeedPage, fetch: Fetcher, *, max_posts: int, max_pages: int
) -> list[FeedPost]:
    """Follow the feed's pages until max_posts posts; return the newest max_posts, newest first."""
    posts = {post.url: post for post in first.posts}
    visited = {first.url}
    page, number = first, 1
    while len(posts) < max_posts and number < max_pages:
        number += 1
        next_url = page.next_url
        if next_url is None and first.is_wordpress:
            next_url = wordpress_page_url(first.url, number)
        if next_url is None or next_url in visited:
            break
        visited.add(next_url)
        following = await _try_feed(fetch, next_url)
        new = [post for post in following.posts if post.url not in posts] if following else []
        if following is None or not new:
            break
        posts.update((post.url, post) for post in new)
        page = following
    newest = sorted(posts.values(), key=lambda post: post.published, reverse=True)
    return newest[:max_posts]
