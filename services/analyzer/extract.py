"""Numbers a blog publishes in its HTML, read without any I/O.

Post pages (schema.org as JSON-LD or microdata, anywhere in the document, @graph and nesting
included): on the first BlogPosting, Article, NewsArticle, SocialMediaPosting or
DiscussionForumPosting node that carries each number,
- comments: `commentCount`, else an InteractionCounter of CommentAction;
- likes: an InteractionCounter of LikeAction;
- views: an InteractionCounter of ReadAction, else of WatchAction.
An InteractionCounter is read from `interactionStatistic` (a dict or a list); its
`interactionType` may be a full URL (`https://schema.org/LikeAction`), a bare or prefixed name
(`LikeAction`, `schema:LikeAction`) or a node (`{"@type": "LikeAction"}`), and its
`userInteractionCount` a number or a string such as "1,234" or "1.2k".

Home page:
- subscribers: the largest FollowAction or SubscribeAction InteractionCounter on a Blog,
  Person, Organization or WebSite node (followers, "neighbours", newsletter subscribers);
- daily visitors, first found of: `<meta name="blog:visitors:today" content="N">`; any
  element's `data-visitors-today="N"` attribute; the counter widget markup
  `<span class="today">N</span>` inside an element whose class contains "counter" or "visitor"
  (e.g. `<div class="widget visitor-counter">Today <span class="today">1,287</span></div>`).

A number that is not published is None, never 0.
"""

import logging
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import extruct
import lxml.etree
import lxml.html
from extruct.jsonld import JsonLdExtractor

log = logging.getLogger(__name__)

POST_TYPES = frozenset(
    {"BlogPosting", "Article", "NewsArticle", "SocialMediaPosting", "DiscussionForumPosting"}
)
OWNER_TYPES = frozenset({"Blog", "Person", "Organization", "WebSite"})

_SEPARATORS = re.compile(r"[,\s\u00a0\u202f'_]")
_COUNT = re.compile(r"(\d+(?:\.\d+)?)([km]?)", re.IGNORECASE)
_COUNT_IN_TEXT = re.compile(r"\d[\d,\u00a0\u202f ]*(?:\.\d+)?\s*[km]?(?![a-z])", re.IGNORECASE)
_MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000}
_VISITOR_WIDGET_XPATH = (
    "//*[contains(translate(@class, 'COUNTERVISIT', 'countervisit'), 'counter')"
    " or contains(translate(@class, 'COUNTERVISIT', 'countervisit'), 'visitor')]"
    "//span[contains(concat(' ', normalize-space(@class), ' '), ' today ')]"
)


@dataclass(frozen=True)
class PostPageMetrics:
    """Numbers published on one post page."""

    comments: int | None = None
    likes: int | None = None
    views: int | None = None


@dataclass(frozen=True)
class HomeMetrics:
    """Numbers published on the blog's home page."""

    subscribers: int | None = None
    daily_visitors: int | None = None


def parse_count(value: object) -> int | None:
    """Read a non-negative count from a number or a string like "1,234" or "1.2k"."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _COUNT.fullmatch(_SEPARATORS.sub("", value))
    if match is None:
        return None
    return int(float(match.group(1)) * _MULTIPLIERS[match.group(2).lower()])


def _count_in_text(text: str) -> int | None:
    match = _COUNT_IN_TEXT.search(text)
    return parse_count(match.group(0)) if match else None


def _parse_html(html: str) -> Any:
    parser = lxml.html.HTMLParser(encoding="utf-8")
    try:
        return lxml.html.document_fromstring(html.encode("utf-8"), parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return None


def _structured_items(tree: Any, base_url: str) -> list[Any]:
    items: list[Any] = []
    extractor = JsonLdExtractor()
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            items.extend(extractor.extract_items(script, base_url=base_url))
        except ValueError as exc:
            log.debug("skipping unparsable JSON-LD block on %s: %s", base_url, exc)
    microdata = extruct.extract(
        tree, base_url=base_url, syntaxes=["microdata"], uniform=True, errors="log"
    )
    items.extend(microdata.get("microdata", []))
    return items


def iter_nodes(items: Iterable[Any]) -> Iterator[dict[str, Any]]:
    """Yield every dict in the structured data, parents before children (@graph included)."""
    stack: list[Any] = list(reversed(list(items)))
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def schema_name(value: object) -> str | None:
    """Return the bare schema.org name of a type reference (URL, prefixed name or node)."""
    if isinstance(value, list):
        return schema_name(value[0]) if value else None
    if isinstance(value, dict):
        return schema_name(value.get("@type") or value.get("@id"))
    if not isinstance(value, str) or not value.strip():
        return None
    return re.split(r"[/#:]", value.strip().rstrip("/"))[-1] or None


def type_names(node: dict[str, Any]) -> set[str]:
    """Return the bare schema.org type names of a node."""
    raw = node.get("@type")
    values = raw if isinstance(raw, list) else [raw]
    return {name for name in map(schema_name, values) if name}


def interaction_counts(node: dict[str, Any]) -> dict[str, int]:
    """Map action name (e.g. "LikeAction") to userInteractionCount for a node's counters."""
    raw = node.get("interactionStatistic")
    counters = raw if isinstance(raw, list) else [raw]
    counts: dict[str, int] = {}
    for counter in counters:
        if not isinstance(counter, dict):
            continue
        action = schema_name(counter.get("interactionType"))
        count = parse_count(counter.get("userInteractionCount"))
        if action and count is not None:
            counts.setdefault(action, count)
    return counts


def _first(values: Iterable[int | None]) -> int | None:
    return next((value for value in values if value is not None), None)


def extract_post_metrics(html: str, base_url: str) -> PostPageMetrics:
    """Read comments, likes and views from a post page's schema.org markup."""
    tree = _parse_html(html)
    if tree is None:
        return PostPageMetrics()
    posts = [
        node
        for node in iter_nodes(_structured_items(tree, base_url))
        if type_names(node) & POST_TYPES
    ]
    stats = [interaction_counts(node) for node in posts]
    comments = _first(parse_count(node.get("commentCount")) for node in posts)
    if comments is None:
        comments = _first(counts.get("CommentAction") for counts in stats)
    likes = _first(counts.get("LikeAction") for counts in stats)
    views = _first(counts.get("ReadAction") for counts in stats)
    if views is None:
        views = _first(counts.get("WatchAction") for counts in stats)
    return PostPageMetrics(comments=comments, likes=likes, views=views)


def extract_home_metrics(html: str, base_url: str) -> HomeMetrics:
    """Read subscribers and today's visitors from a blog's home page."""
    tree = _parse_html(html)
    if tree is None:
        return HomeMetrics()
    follower_counts = [
        count
        for node in iter_nodes(_structured_items(tree, base_url))
        if type_names(node) & OWNER_TYPES
        for action, count in interaction_counts(node).items()
        if action in ("FollowAction", "SubscribeAction")
    ]
    subscribers = max(follower_counts) if follower_counts else None
    return HomeMetrics(subscribers=subscribers, daily_visitors=_daily_visitors(tree))


def _daily_visitors(tree: Any) -> int | None:
    for meta in tree.xpath('//meta[@name="blog:visitors:today"]'):
        count = parse_count(meta.get("content", ""))
        if count is not None:
            return count
    for element in tree.xpath("//*[@data-visitors-today]"):
        count = _count_in_text(element.get("data-visitors-today", ""))
        if count is not None:
            return count
    for span in tree.xpath(_VISITOR_WIDGET_XPATH):
        count = _count_in_text(span.text_content())
        if count is not None:
            return count
    return None
