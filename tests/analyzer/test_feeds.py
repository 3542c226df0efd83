from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from services.analyzer.errors import NotABlog
from services.analyzer.feeds import (
    FeedPage,
    discover_feed,
    discover_feed_links,
    fallback_feed_urls,
    parse_feed,
    read_feed,
    wordpress_page_url,
)
from services.analyzer.fetch import Page

HOME = "https://blog.example/journal/"
NEWEST = datetime(2024, 5, 1, 12, tzinfo=UTC)


def html_page(url: str, body: str, status: int = 200) -> Page:
    return Page(url, status, "text/html", "utf-8", body.encode())


def rss(posts: range, *, wordpress: bool = True, base: str = "https://blog.example") -> bytes:
    items = "".join(
        f"<item><title>Post {n}</title><link>{base}/p/{n}/</link>"
        f"<pubDate>{format_datetime(NEWEST - timedelta(days=n))}</pubDate>"
        f"<slash:comments>{n % 4}</slash:comments></item>"
        for n in posts
    )
    generator = "<generator>https://wordpress.org/?v=6.4.3</generator>" if wordpress else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:slash="http://purl.org/rss/1.0/modules/slash/"><channel><title>J</title>'
        f"<link>{base}/</link>{generator}{items}</channel></rss>"
    ).encode()


class FakeWeb:
    """A dict of URL -> Page standing in for the network; records what was fetched."""

    def __init__(self, pages: dict[str, Page]) -> None:
        self.pages = pages
        self.fetched: list[str] = []

    async def __call__(self, url: str) -> Page:
        self.fetched.append(url)
        return self.pages.get(url) or Page(url, 404, "text/html", None, b"not found")


def feed_page(url: str, body: bytes, content_type: str = "application/rss+xml") -> Page:
    return Page(url, 200, content_type, None, body)


def test_discovers_linked_feeds_resolving_relative_hrefs() -> None:
    html = """<html><head>
<link rel="stylesheet" href="/s.css">
<link rel="alternate" type="application/rss+xml" title="Journal &raquo; Comments Feed"
      href="comments/feed/">
<link rel="alternate" type="application/rss+xml; charset=UTF-8" title="Journal &raquo; Feed"
      href="feed/">
<link rel="alternate" type="application/atom+xml" href="/journal/atom.xml">
<link rel="alternate" type="application/json" href="/feed.json">
<link rel="alternate" hreflang="de" href="/de/">
<link rel="alternate" type="application/rss+xml" href="feed/">
</head><body></body></html>"""
    assert discover_feed_links(html, HOME) == [
        "https://blog.example/journal/feed/",
        "https://blog.example/journal/atom.xml",
        "https://blog.example/journal/comments/feed/",
    ]


def test_discovery_honours_base_href() -> None:
    html = """<html><head><base href="https://cdn.blog.example/j/">
<link rel="Alternate" type="APPLICATION/ATOM+XML" href="index.atom"></head></html>"""
    assert discover_feed_links(html, HOME) == ["https://cdn.blog.example/j/index.atom"]


def test_fallback_paths_are_under_the_blog_home() -> None:
    assert fallback_feed_urls("https://blog.example") == [
        "https://blog.example/feed",
        "https://blog.example/rss",
        "https://blog.example/atom.xml",
        "https://blog.example/feed.xml",
        "https://blog.example/index.xml",
    ]
    assert fallback_feed_urls("https://blog.example/journal?x=1")[0] == (
        "https://blog.example/journal/feed"
    )


def test_parses_rss_with_slash_comments_and_utc_dates() -> None:
    body = b"""<?xml version="1.0"?><rss version="2.0"
 xmlns:slash="http://purl.org/rss/1.0/modules/slash/"><channel><title>T</title>
<generator>https://wordpress.org/?v=6.4.3</generator>
<item><title> Hello </title><link>/2024/02/hello/</link>
 <pubDate>Mon, 05 Feb 2024 10:00:00 +0100</pubDate><slash:comments>7</slash:comments></item>
<item><title>No date</title><link>https://blog.example/undated/</link></item>
<item><title>No comments</title><link>https://blog.example/b/</link>
 <pubDate>Sun, 04 Feb 2024 08:00:00 GMT</pubDate></item>
</channel></rss>"""
    parsed = parse_feed(body, "https://blog.example/feed/")
    assert parsed.is_wordpress and parsed.next_url is None
    assert [(p.url, p.title, p.published, p.comments) for p in parsed.posts] == [
        ("https://blog.example/2024/02/hello/", "Hello", datetime(2024, 2, 5, 9, tzinfo=UTC), 7),
        ("https://blog.example/b/", "No comments", datetime(2024, 2, 4, 8, tzinfo=UTC), None),
    ]


def test_parses_atom_with_next_link_and_thread_counts() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:thr="http://purl.org/syndication/thread/1.0">
<title>A</title><link rel="next" href="feed.atom?page=2"/>
<entry><title>One</title><link rel="alternate" href="https://y.example/one"/><id>1</id>
 <published>2024-01-01T10:00:00+02:00</published><thr:total>4</thr:total></entry>
<entry><title>Two</title><link rel="alternate" href="https://y.example/two"/><id>2</id>
 <updated>2024-01-03T00:00:00Z</updated>
 <link rel="replies" type="text/html" href="https://y.example/two#c" thr:count="9"/></entry>
</feed>"""
    parsed = parse_feed(body, "https://y.example/feed.atom", "application/atom+xml")
    assert parsed.next_url == "https://y.example/feed.atom?page=2"
    assert not parsed.is_wordpress
    assert [(p.url, p.published, p.comments) for p in parsed.posts] == [
        ("https://y.example/one", datetime(2024, 1, 1, 8, tzinfo=UTC), 4),
        ("https://y.example/two", datetime(2024, 1, 3, tzinfo=UTC), 9),
    ]


@pytest.mark.parametrize(
    "body",
    [b"<html><body><h1>Feed the ducks</h1></body></html>", b"", b"/etc/passwd", b"{}"],
)
def test_non_feeds_are_not_a_blog(body: bytes) -> None:
    # b"/etc/passwd" would be opened as a local file if the bytes reached feedparser directly.
    with pytest.raises(NotABlog, match="not an RSS or Atom feed"):
        parse_feed(body, "https://blog.example/feed")


def test_wordpress_page_url() -> None:
    assert wordpress_page_url("https://b.example/feed/", 2) == "https://b.example/feed/?paged=2"
    assert wordpress_page_url("https://b.example/?feed=rss2&paged=1", 3) == (
        "https://b.example/?feed=rss2&paged=3"
    )


async def test_discover_uses_linked_feed_and_skips_fallbacks() -> None:
    home = html_page(
        HOME, '<link rel="alternate" type="application/rss+xml" href="/journal/feed/">'
    )
    web = FakeWeb({"https://blog.example/journal/feed/": feed_page("x", rss(range(3)))})
    first = await discover_feed(home, web)
    assert len(first.posts) == 3
    assert web.fetched == ["https://blog.example/journal/feed/"]


async def test_broken_linked_feed_does_not_fall_back() -> None:
    home = html_page(HOME, '<link rel="alternate" type="application/atom+xml" href="gone.xml">')
    web = FakeWeb({})
    with pytest.raises(NotABlog, match="none of the linked feeds"):
        await discover_feed(home, web)
    assert web.fetched == ["https://blog.example/journal/gone.xml"]


async def test_falls_back_to_common_paths_when_nothing_is_linked() -> None:
    home = html_page(HOME.rstrip("/"), "<p>no links here</p>")
    web = FakeWeb(
        {
            "https://blog.example/journal/feed": html_page("f", "<h1>Not a feed</h1>"),
            "https://blog.example/journal/atom.xml": feed_page("a", rss(range(2), wordpress=False)),
        }
    )
    first = await discover_feed(home, web)
    assert len(first.posts) == 2
    assert web.fetched == [
        "https://blog.example/journal/feed",
        "https://blog.example/journal/rss",
        "https://blog.example/journal/atom.xml",
    ]


async def test_no_feed_anywhere_is_not_a_blog() -> None:
    web = FakeWeb({})
    with pytest.raises(NotABlog, match="no RSS or Atom feed"):
        await discover_feed(html_page(HOME, "<p>bakery</p>"), web)
    assert len(web.fetched) == 5


async def test_reads_wordpress_pages_until_enough_posts() -> None:
    feed = "https://blog.example/feed/"
    web = FakeWeb(
        {
            f"{feed}?paged=2": feed_page(f"{feed}?paged=2", rss(range(10, 20))),
            f"{feed}?paged=3": feed_page(f"{feed}?paged=3", rss(range(20, 30))),
            f"{feed}?paged=4": feed_page(f"{feed}?paged=4", rss(range(30, 40))),
        }
    )
    first = parse_feed(rss(range(10)), feed)
    posts = await read_feed(first, web, max_posts=25, max_pages=5)
    assert web.fetched == [f"{feed}?paged=2", f"{feed}?paged=3"]
    assert [post.title for post in posts] == [f"Post {n}" for n in range(25)]
    assert posts == sorted(posts, key=lambda post: post.published, reverse=True)


async def test_stops_at_max_pages_missing_page_or_no_new_posts() -> None:
    feed = "https://blog.example/feed/"
    first = parse_feed(rss(range(10)), feed)
    repeat = FakeWeb({f"{feed}?paged=2": feed_page(feed, rss(range(10)))})
    assert len(await read_feed(first, repeat, max_posts=30, max_pages=5)) == 10
    assert repeat.fetched == [f"{feed}?paged=2"]

    missing = FakeWeb({})
    assert len(await read_feed(first, missing, max_posts=30, max_pages=5)) == 10

    pages = {f"{feed}?paged={n}": feed_page(feed, rss(range(n * 10, n * 10 + 10))) for n in (1, 2)}
    limited = FakeWeb(pages)
    assert len(await read_feed(first, limited, max_posts=30, max_pages=2)) == 20
    assert limited.fetched == [f"{feed}?paged=2"]


async def test_non_wordpress_rss_without_next_link_is_one_page() -> None:
    web = FakeWeb({})
    first = parse_feed(rss(range(8), wordpress=False), "https://blog.example/rss.xml")
    assert len(await read_feed(first, web, max_posts=30, max_pages=5)) == 8
    assert web.fetched == []


async def test_follows_atom_next_links() -> None:
    def atom(page: int) -> bytes:
        entries = "".join(
            f"<entry><title>E{n}</title><link href='https://y.example/{n}'/><id>{n}</id>"
            f"<updated>2024-01-{n + 1:02d}T00:00:00Z</updated></entry>"
            for n in range(page * 3, page * 3 + 3)
        )
        nxt = f'<link rel="next" href="?page={page + 1}"/>' if page < 3 else ""
        return (
            f'<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>{nxt}{entries}</feed>'
        ).encode()

    url = "https://y.example/feed.atom"
    web = FakeWeb({f"{url}?page={n}": feed_page(f"{url}?page={n}", atom(n)) for n in (1, 2, 3)})
    first: FeedPage = parse_feed(atom(0), url)
    posts = await read_feed(first, web, max_posts=100, max_pages=5)
    assert web.fetched == [f"{url}?page=1", f"{url}?page=2", f"{url}?page=3"]
    assert [post.title for post in posts] == [f"E{n}" for n in range(11, -1, -1)]
