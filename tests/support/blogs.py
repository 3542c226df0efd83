"""Realistic test blogs (deterministic posts as WordPress, Atom and bare sites); see blogserver.py.

    with BlogServer(latency_s=0.05) as server:
        url = server.url("wordpress")          # http://127.0.0.1:<port>/wordpress
        server.fail_next("/wordpress/feed/", 503, times=2)
        ...
        server.hits("/wordpress/feed/"), server.max_in_flight

Blogs live under path prefixes (`/<name>/`); `/<name>` redirects there with a 301, as real
servers do. Every blog's data is generated from a fixed seed, and `expected_metrics()` derives
the metrics the analyzer should report straight from that data.
"""

import gzip
import html
import json
import random
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from xml.sax.saxutils import escape as xml_escape

HTML = "text/html; charset=UTF-8"
_VOCABULARY = (
    "garden light morning coffee bread river notes city winter code journey kitchen market "
    "autumn slow reading letters bicycle harbour station library rain film music pottery "
    "mountain trail recipe sourdough tomatoes weekend studio sketch quiet window"
)
_WORDS = _VOCABULARY.split()


@dataclass(frozen=True)
class Response:
    """What the server sends for one request."""

    status: int
    body: bytes = b""
    content_type: str = HTML
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Post:
    """Generating data of one post; None means the blog does not publish that number."""

    slug: str
    title: str
    published: datetime
    feed_comments: int | None = None
    page_comments: int | None = None
    likes: int | None = None
    views: int | None = None


def _sentence(rng: random.Random, words: int = 12) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 6))).title()


def _dates(rng: random.Random, count: int, newest: datetime) -> list[datetime]:
    dates, when = [], newest
    for _ in range(count):
        dates.append(when)
        when -= timedelta(
            days=rng.randint(1, 4), hours=rng.randint(0, 20), minutes=rng.randint(0, 59)
        )
    return dates


def _page(title: str, body: str, head: str = "", blog_name: str = "") -> bytes:
    """A full HTML document with the chrome real blog themes have."""
    return f"""<!DOCTYPE html>
<html lang="en-US">
<head>
<meta charset="UTF-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<link rel="stylesheet" id="theme-css" href="/static/theme.css?ver=2.4.1" media="all">
<style>body{{font-family:Georgia,serif;margin:0}} .site-header>nav a{{color:#333}}</style>
<script>window.dataLayer = window.dataLayer || [];
if (1 < 2) {{ dataLayer.push({{"js": "<ok>"}}); }}</script>
{head}
</head>
<body class="home blog">
<!-- theme: twentytwenty-child, cached page -->
<header class="site-header"><a class="site-title" href="./">{html.escape(blog_name or title)}</a>
<nav class="primary-menu"><ul><li><a href="./">Home</a></li><li><a href="about/">About</a></li>
<li><a href="archive/">Archive</a></li><li><a href="contact/">Contact</a></li></ul></nav></header>
<main id="site-content" role="main">
{body}
</main>
<footer class="site-footer">
<p>&copy; 2024 {html.escape(blog_name or title)}. Powered by love &amp; coffee.</p></footer>
<script src="/static/navigation.js?ver=2.4.1" defer></script>
</body>
</html>
""".encode()


def _jsonld(data: Any) -> str:
    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


class Blog:
    """A blog served under /<name>/; subclasses generate content from their posts."""

    name: str
    posts: list[Post]
    subscribers: int | None = None
    daily_visitors: int | None = None

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        """Answer a request for `path` (relative to the blog, starting with "/")."""
        raise NotImplementedError

    def expected_metrics(
        self, max_posts: int = 30, missing_pages: Collection[str] = ()
    ) -> dict[str, Any]:
        """The metrics the analyzer should report, derived from the generating data.

        `missing_pages` names slugs whose post page could not be read: they keep their feed data.
        """
        posts = sorted(self.posts, key=lambda post: post.published, reverse=True)[:max_posts]
        posts = [
            replace(post, page_comments=None, likes=None, views=None)
            if post.slug in missing_pages
            else post
            for post in posts
        ]

        def avg(values: list[int | None]) -> float | None:
            present = [value for value in values if value is not None]
            return round(sum(present) / len(present), 2) if present else None

        span_days = (posts[0].published - posts[-1].published).total_seconds() / 86400
        comments = [
            p.page_comments if p.page_comments is not None else p.feed_comments for p in posts
        ]
        return {
            "posts_analyzed": len(posts),
            "posts_per_week": round(len(posts) / (max(span_days, 7.0) / 7.0), 2),
            "avg_comments": avg(comments),
            "avg_likes": avg([post.likes for post in posts]),
            "avg_views": avg([post.views for post in posts]),
            "subscribers": self.subscribers,
            "daily_visitors": self.daily_visitors,
        }

    def post_path(self, post: Post) -> str:
        """The path of a post page relative to the blog."""
        raise NotImplementedError

    def _post_list(self, base: str, count: int = 10) -> str:
        items = "".join(
            f'<article class="post-preview"><h2 class="entry-title">'
            f'<a href="{base}{self.post_path(p)}">'
            f"{html.escape(p.title)}</a></h2><time>{p.published:%B %d, %Y}</time></article>\n"
            for p in self.posts[:count]
        )
        return f'<section class="latest-posts">{items}</section>'


class WordPressBlog(Blog):
    """WordPress: RSS 2.0 with slash:comments, 25 items a feed page (`?paged=N`), JSON-LD."""

    per_feed_page = 25

    def __init__(self, name: str = "wordpress", *, seed: int = 7, post_count: int = 45) -> None:
        self.name = name
        rng = random.Random(f"wordpress-{seed}")
        dates = _dates(rng, post_count, datetime(2024, 5, 20, 9, 30, tzinfo=UTC))
        self.posts = []
        for index, when in enumerate(dates):
            feed_comments = rng.randint(0, 40)
            self.posts.append(
                Post(
                    slug=f"post-{post_count - index}",
                    title=_title(rng),
                    published=when,
                    feed_comments=feed_comments,
                    # The page is fresher than the cached feed; some themes omit the count.
                    page_comments=None if index % 5 == 4 else feed_comments + rng.randint(0, 3),
                    likes=rng.randint(5, 300),
                    views=None if index % 7 == 3 else rng.randint(200, 20_000),
                )
            )
        self.subscribers = 1_000 + seed * 37 + 806
        self.daily_visitors = 1_287 + seed * 11

    def post_path(self, post: Post) -> str:
        return f"/{post.published:%Y/%m/%d}/{post.slug}/"

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        if path == "/":
            return Response(200, self._home(base))
        if path == "/feed/":
            return self._feed(base, int(query.get("paged", "1") or 1))
        for post in self.posts:
            if path == self.post_path(post):
                return Response(200, self._post_page(base, post))
        return Response(
            404, _page("Page not found", "<h1>Oops! That page can&rsquo;t be found.</h1>")
        )

    def _home(self, base: str) -> bytes:
        graph = {
            "@context": "https://schema.org",
            "@graph": [
                {
                    "@type": "WebSite",
                    "@id": f"{base}/#website",
                    "url": f"{base}/",
                    "name": "Slow Mornings",
                },
                {
                    "@type": "Blog",
                    "@id": f"{base}/#blog",
                    "name": "Slow Mornings",
                    "author": {"@type": "Person", "name": "Mira Lindqvist"},
                    "interactionStatistic": {
                        "@type": "InteractionCounter",
                        "interactionType": "https://schema.org/FollowAction",
                        "userInteractionCount": self.subscribers,
                    },
                },
            ],
        }
        head = (
            '<link rel="alternate" type="application/rss+xml" '
            f'title="Slow Mornings &raquo; Feed" href="{base}/feed/">\n'
            '<link rel="alternate" type="application/rss+xml" '
            f'title="Slow Mornings &raquo; Comments Feed" href="{base}/comments/feed/">\n'
            f'<link rel="https://api.w.org/" href="{base}/wp-json/">\n'
            f'<meta name="generator" content="WordPress 6.4.3">\n{_jsonld(graph)}'
        )
        widget = f"""<aside class="sidebar">
<section id="visitor-counter-2" class="widget widget_visitor_counter">
<h2 class="widget-title">Visitors</h2>
<ul><li>Today: <span class="today">{self.daily_visitors:,}</span></li>
<li>Yesterday: <span class="yesterday">1,502</span></li>
<li>Total: <span class="total">482,113</span></li></ul></section>
<section class="widget widget_search">
<form role="search" action="{base}/"><input type="search" name="s"></form></section>
</aside>"""
        return _page("Slow Mornings", self._post_list(base) + widget, head, "Slow Mornings")

    def _feed(self, base: str, paged: int) -> Response:
        start = (paged - 1) * self.per_feed_page
        chunk = self.posts[start : start + self.per_feed_page]
        if paged < 1 or not chunk:
            return Response(404, _page("Page not found", "<h1>Nothing here</h1>"))
        items = "".join(
            f"""<item>
<title>{xml_escape(p.title)}</title>
<link>{base}{self.post_path(p)}</link>
<comments>{base}{self.post_path(p)}#respond</comments>
<dc:creator><![CDATA[Mira Lindqvist]]></dc:creator>
<pubDate>{format_datetime(p.published)}</pubDate>
<category><![CDATA[Journal]]></category>
<guid isPermaLink="false">{base}/?p={1000 + i}</guid>
<description><![CDATA[{_sentence(random.Random(p.slug))} [&#8230;]]]></description>
<content:encoded><![CDATA[<p>{_sentence(random.Random(p.slug), 40)}</p>]]></content:encoded>
<wfw:commentRss>{base}{self.post_path(p)}feed/</wfw:commentRss>
<slash:comments>{p.feed_comments}</slash:comments>
</item>
"""
            for i, p in enumerate(chunk)
        )
        xml = f"""<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"
xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:wfw="http://wellformedweb.org/CommentAPI/"
xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom"
xmlns:sy="http://purl.org/rss/1.0/modules/syndication/" xmlns:slash="http://purl.org/rss/1.0/modules/slash/">
<channel>
<title>Slow Mornings</title>
<atom:link href="{base}/feed/" rel="self" type="application/rss+xml" />
<link>{base}/</link>
<description>Notes on bread, bikes and quiet rooms</description>
<lastBuildDate>{format_datetime(self.posts[0].published)}</lastBuildDate>
<language>en-US</language><sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>1</sy:updateFrequency>
<generator>https://wordpress.org/?v=6.4.3</generator>
{items}</channel>
</rss>
"""
        return Response(200, xml.encode(), "application/rss+xml; charset=UTF-8")

    def _post_page(self, base: str, post: Post) -> bytes:
        url = f"{base}{self.post_path(post)}"
        posting: dict[str, Any] = {
            "@type": "BlogPosting",
            "@id": f"{url}#article",
            "headline": post.title,
            "datePublished": post.published.isoformat(),
            "author": {"@type": "Person", "name": "Mira Lindqvist"},
            "isPartOf": {"@id": f"{base}/#blog"},
            "interactionStatistic": [
                {
                    "@type": "InteractionCounter",
                    "interactionType": "https://schema.org/LikeAction",
                    "userInteractionCount": post.likes,
                }
            ],
        }
        if post.page_comments is not None:
            posting["commentCount"] = post.page_comments
        if post.views is not None:
            posting["interactionStatistic"].append(
                {
                    "@type": "InteractionCounter",
                    "interactionType": {"@type": "ReadAction"},
                    "userInteractionCount": f"{post.views:,}",
                }
            )
        graph = {
            "@context": "https://schema.org",
            "@graph": [
                {"@type": "WebPage", "@id": url, "url": url, "name": post.title},
                posting,
                {
                    "@type": "BreadcrumbList",
                    "itemListElement": [{"@type": "ListItem", "position": 1, "name": "Home"}],
                },
            ],
        }
        rng = random.Random(post.slug)
        comments = "".join(
            f'<li class="comment"><div class="comment-author">{rng.choice(_WORDS).title()}</div>'
            f"<p>{_sentence(rng)}</p></li>"
            for _ in range(min(post.feed_comments or 0, 3))
        )
        body = f"""<article class="post type-post status-publish">
<h1 class="entry-title">{html.escape(post.title)}</h1>
<div class="entry-meta">
<time datetime="{post.published.isoformat()}">{post.published:%B %d, %Y}</time></div>
<div class="entry-content"><p>{_sentence(rng, 60)}</p><p>{_sentence(rng, 45)}</p></div>
<div class="sharedaddy sd-like"><button class="like-button">&#9829; Like</button></div></article>
<div id="comments" class="comments-area"><ol class="comment-list">{comments}</ol>
<div id="respond"><form action="{base}/wp-comments-post.php" method="post">
<textarea name="comment"></textarea></form></div></div>"""
        return _page(post.title, body, _jsonld(graph), "Slow Mornings")


class AtomBlog(Blog):
    """An Atom blog: rel="next" paginated feed, microdata Article, no views or visitors."""

    per_feed_page = 12

    def __init__(self, name: str = "atom", *, post_count: int = 40) -> None:
        self.name = name
        rng = random.Random("atom")
        dates = _dates(rng, post_count, datetime(2024, 4, 2, 18, 0, tzinfo=UTC))
        self.posts = [
            Post(
                slug=f"{when:%Y-%m-%d}-{index}",
                title=_title(rng),
                published=when,
                page_comments=None if index % 8 == 7 else rng.randint(0, 25),
                likes=None if index % 6 == 5 else rng.randint(0, 2_500),
            )
            for index, when in enumerate(dates)
        ]

    def post_path(self, post: Post) -> str:
        return f"/posts/{post.slug}.html"

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        if path == "/":
            head = (
                '<link rel="alternate" type="application/atom+xml" title="Field Notes" '
                'href="feed.atom">'
            )
            return Response(200, _page("Field Notes", self._post_list(base), head, "Field Notes"))
        if path == "/feed.atom":
            return self._feed(base, int(query.get("page", "1") or 1))
        for post in self.posts:
            if path == self.post_path(post):
                return Response(200, self._post_page(post))
        return Response(404, _page("Not found", "<h1>404</h1>"))

    def _feed(self, base: str, page: int) -> Response:
        start = (page - 1) * self.per_feed_page
        chunk = self.posts[start : start + self.per_feed_page]
        if page < 1 or not chunk:
            return Response(404, b"not found", "text/plain")
        has_next = start + self.per_feed_page < len(self.posts)
        next_link = f'<link rel="next" href="feed.atom?page={page + 1}"/>' if has_next else ""
        entries = "".join(
            f"""<entry>
<title type="text">{xml_escape(p.title)}</title>
<link rel="alternate" type="text/html" href="{base}{self.post_path(p)}"/>
<id>tag:fieldnotes.example,2024:{p.slug}</id>
<published>{p.published.isoformat()}</published>
<updated>{(p.published + timedelta(hours=2)).isoformat()}</updated>
<author><name>Jonas Weber</name></author>
<summary type="html">{xml_escape("<p>" + _sentence(random.Random(p.slug)) + "</p>")}</summary>
</entry>
"""
            for p in chunk
        )
        xml = f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<title>Field Notes</title><subtitle>Walking, maps and small machines</subtitle>
<link rel="self" href="{base}/feed.atom?page={page}"/>
<link rel="alternate" type="text/html" href="{base}/"/>
{next_link}
<id>tag:fieldnotes.example,2024:feed</id>
<updated>{self.posts[0].published.isoformat()}</updated>
<generator uri="https://gohugo.io/">Hugo</generator>
{entries}</feed>
"""
        return Response(200, xml.encode(), "application/atom+xml; charset=utf-8")

    def _post_page(self, post: Post) -> bytes:
        rng = random.Random(post.slug)
        comment_meta = (
            f'<meta itemprop="commentCount" content="{post.page_comments}">'
            if post.page_comments is not None
            else ""
        )
        likes = (
            '<div itemprop="interactionStatistic" itemscope itemtype="https://schema.org/InteractionCounter">'
            '<link itemprop="interactionType" href="https://schema.org/LikeAction">'
            '<span class="kudos">&#9733; '
            f'<span itemprop="userInteractionCount">{post.likes:,}</span> kudos</span></div>'
            if post.likes is not None
            else ""
        )
        body = f"""<article itemscope itemtype="https://schema.org/Article">
<h1 itemprop="headline">{html.escape(post.title)}</h1>
<p class="byline">by <span itemprop="author" itemscope itemtype="https://schema.org/Person">
<span itemprop="name">Jonas Weber</span></span> on
<time itemprop="datePublished" datetime="{post.published.isoformat()}">
{post.published:%d %b %Y}</time></p>
{comment_meta}
<div itemprop="articleBody"><p>{_sentence(rng, 50)}</p>
<pre><code>if a &lt; b: print("x")</code></pre></div>
{likes}
</article>"""
        return _page(post.title, body, blog_name="Field Notes")


class SparseBlog(Blog):
    """A hand-made blog with a plain RSS feed and no published numbers at all."""

    def __init__(self, name: str = "sparse") -> None:
        self.name = name
        rng = random.Random("sparse")
        when = datetime(2024, 3, 15, 7, 45, tzinfo=UTC)
        self.posts = []
        for index in range(8):
            self.posts.append(Post(slug=f"entry-{8 - index}", title=_title(rng), published=when))
            when -= timedelta(days=rng.randint(3, 10), hours=rng.randint(0, 12))

    def post_path(self, post: Post) -> str:
        return f"/{post.slug}.html"

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        if path == "/":
            head = '<link rel="alternate" type="application/rss+xml" href="/sparse/rss.xml">'
            return Response(200, _page("A Quiet Notebook", self._post_list(base), head))
        if path == "/rss.xml":
            items = "".join(
                f"<item><title>{xml_escape(p.title)}</title><link>{base}{self.post_path(p)}</link>"
                f"<pubDate>{format_datetime(p.published)}</pubDate><description>{xml_escape(_sentence(random.Random(p.slug)))}</description></item>\n"
                for p in self.posts
            )
            xml = (
                '<?xml version="1.0"?><rss version="2.0"><channel><title>A Quiet Notebook</title>'
                f"<link>{base}/</link><description>Occasional notes</description>\n"
                f"{items}</channel></rss>"
            )
            return Response(200, xml.encode(), "application/rss+xml")
        for post in self.posts:
            if path == self.post_path(post):
                meta = f'<meta property="og:title" content="{html.escape(post.title)}">'
                text = (
                    f"<article><h1>{html.escape(post.title)}</h1>"
                    f"<p>{_sentence(random.Random(post.slug), 30)}</p></article>"
                )
                return Response(200, _page(post.title, text, meta))
        return Response(404, _page("Not found", "<h1>Not found</h1>"))


class NotABlogSite(Blog):
    """A bakery's site: HTML pages, no feed linked, and /feed is an HTML page."""

    def __init__(self, name: str = "notablog") -> None:
        self.name = name
        self.posts = []

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        if path == "/":
            body = (
                "<h1>Crumb &amp; Co. Bakery</h1><p>Open daily 7&ndash;18.</p>"
                '<a href="feed">Feed the ducks</a>'
            )
            return Response(200, _page("Crumb & Co.", body))
        if path == "/feed":
            return Response(200, _page("Feed the ducks", "<p>Please do not feed them bread.</p>"))
        return Response(404, _page("Not found", "<h1>Not found</h1>"))

    def expected_metrics(
        self, max_posts: int = 30, missing_pages: Collection[str] = ()
    ) -> dict[str, Any]:
        raise AssertionError("notablog has no metrics: crawling it fails with NotABlog")


class MissingBlog(NotABlogSite):
    """A blog that is gone: every page answers 404."""

    def __init__(self, name: str = "missing") -> None:
        super().__init__(name)

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        return Response(404, _page("404 Not Found", "<h1>Not Found</h1>"))


def default_blogs() -> list[Blog]:
    """The five standard test blogs."""
    return [WordPressBlog(), AtomBlog(), SparseBlog(), NotABlogSite(), MissingBlog()]


class EncodedBlog(Blog):
    """Another blog whose bodies are sent compressed: each coding applied in order and named
    in Content-Encoding, as a server with compression turned on would send them."""

    def __init__(self, inner: Blog, codings: Sequence[str], name: str = "") -> None:
        self.inner = inner
        self.codings = tuple(codings)
        self.name = name or f"{inner.name}-{'-'.join(self.codings)}"
        self.posts = inner.posts
        self.subscribers = inner.subscribers
        self.daily_visitors = inner.daily_visitors

    def post_path(self, post: Post) -> str:
        return self.inner.post_path(post)

    def expected_metrics(
        self, max_posts: int = 30, missing_pages: Collection[str] = ()
    ) -> dict[str, Any]:
        return self.inner.expected_metrics(max_posts, missing_pages)

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        response = self.inner.handle(path, query, base)
        body = response.body
        for coding in self.codings:
            body = encode(body, coding)
        headers = (*response.headers, ("Content-Encoding", ", ".join(self.codings)))
        return replace(response, body=body, headers=headers)


class RawSite(NotABlogSite):
    """One home page sent as given: raw body bytes, extra headers (e.g. Content-Encoding)."""

    def __init__(
        self, name: str, body: bytes, headers: Sequence[tuple[str, str]], content_type: str = HTML
    ) -> None:
        super().__init__(name)
        self.response = Response(200, body, content_type, tuple(headers))

    def handle(self, path: str, query: dict[str, str], base: str) -> Response:
        if path == "/":
            return self.response
        return Response(404, _page("Not found", "<h1>Not found</h1>"))


def encode(body: bytes, coding: str) -> bytes:
    """The body in one content coding: gzip, deflate (zlib-wrapped), raw-deflate or identity."""
    if coding in ("gzip", "x-gzip"):
        return gzip.compress(body, mtime=0)
    if coding == "deflate":
        return zlib.compress(body)
    if coding == "raw-deflate":  # what some servers send as "deflate": no zlib wrapper
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        return packer.compress(body) + packer.flush()
    if coding == "identity":
        return body
    raise ValueError(f"no encoder for {coding!r}")


def gzip_bomb(zeros_mib: int, layers: int = 1) -> bytes:
    """zeros_mib MiB of zero bytes gzipped `layers` times, built without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(2**20)
    data = b"".join(packer.compress(block) for _ in range(zeros_mib)) + packer.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9, mtime=0)
    return data
