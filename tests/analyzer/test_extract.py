import pytest

from services.analyzer.extract import (
    HomeMetrics,
    PostPageMetrics,
    extract_home_metrics,
    extract_post_metrics,
    parse_count,
)

BASE = "https://blog.example/2024/05/a-post/"


def page(head: str = "", body: str = "") -> str:
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>A post</title>
<link rel="stylesheet" href="/style.css"><script>var x = 1 < 2 && "</div>";</script>
{head}</head><body><nav><a href="/">Home</a></nav><!-- comment -->{body}
<footer>&copy; 2024</footer></body></html>"""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12),
        (0, 0),
        (12.7, 12),
        ("1,234", 1234),
        (" 1 234 ", 1234),
        ("1\u00a0234", 1234),
        ("1.2k", 1200),
        ("3M", 3_000_000),
        ("42", 42),
        (-3, None),
        (True, None),
        ("", None),
        ("many", None),
        ("12 likes", None),
        (None, None),
        (float("nan"), None),
        ({"value": 3}, None),
    ],
)
def test_parse_count(value: object, expected: int | None) -> None:
    assert parse_count(value) == expected


def test_jsonld_list_with_string_numbers() -> None:
    html = page(
        head="""<script type="application/ld+json">[
  {"@context": "https://schema.org", "@type": "Organization", "name": "Acme"},
  {"@context": "https://schema.org", "@type": "BlogPosting", "headline": "A post",
   "commentCount": "1,234",
   "interactionStatistic": [
     {"@type": "InteractionCounter", "interactionType": "https://schema.org/LikeAction",
      "userInteractionCount": "2,048"},
     {"@type": "InteractionCounter", "interactionType": "http://schema.org/WatchAction",
      "userInteractionCount": 99000}
   ]}
]</script>"""
    )
    assert extract_post_metrics(html, BASE) == PostPageMetrics(
        comments=1234, likes=2048, views=99000
    )


def test_jsonld_graph_with_node_and_prefixed_action_types() -> None:
    html = page(
        head="""<script type="application/ld+json">{"@context": "https://schema.org", "@graph": [
  {"@type": "WebPage", "@id": "https://blog.example/2024/05/a-post/"},
  {"@type": ["Article", "BlogPosting"], "headline": "A post",
   "interactionStatistic": {"@type": "InteractionCounter",
     "interactionType": {"@type": "CommentAction"}, "userInteractionCount": 17}},
  {"@type": "Person", "name": "Ann",
   "interactionStatistic": {"@type": "InteractionCounter",
     "interactionType": "schema:LikeAction", "userInteractionCount": 5}}
]}</script>"""
    )
    # Comments fall back to the CommentAction counter; the Person's likes are not the post's.
    assert extract_post_metrics(html, BASE) == PostPageMetrics(comments=17)


def test_nested_posting_and_read_action_preferred_for_views() -> None:
    html = page(
        head="""<script type="application/ld+json">
{"@context": "https://schema.org", "@type": "WebPage",
 "mainEntity": {"@type": "NewsArticle", "commentCount": 3, "interactionStatistic": [
   {"@type": "InteractionCounter", "interactionType": "WatchAction", "userInteractionCount": 40},
   {"@type": "InteractionCounter", "interactionType": "ReadAction", "userInteractionCount": 700},
   {"@type": "InteractionCounter", "interactionType": "LikeAction", "userInteractionCount": "0"}
 ]}}</script>"""
    )
    assert extract_post_metrics(html, BASE) == PostPageMetrics(comments=3, likes=0, views=700)


def test_broken_jsonld_block_does_not_hide_valid_one() -> None:
    html = page(
        head="""<script type="application/ld+json">{"@type": "BlogPosting", oops</script>
<script type="application/ld+json">
// added by the SEO plugin
{"@context": "https://schema.org", "@type": "SocialMediaPosting", "commentCount": 8}
</script>"""
    )
    assert extract_post_metrics(html, BASE).comments == 8


def test_microdata_article() -> None:
    html = page(
        body="""<article itemscope itemtype="https://schema.org/Article">
<h1 itemprop="headline">A post</h1>
<span itemprop="author" itemscope itemtype="https://schema.org/Person">
  <span itemprop="name">Jonas</span></span>
<meta itemprop="commentCount" content="12">
<div itemprop="interactionStatistic" itemscope itemtype="https://schema.org/InteractionCounter">
  <link itemprop="interactionType" href="https://schema.org/LikeAction">
  &#9733; <span itemprop="userInteractionCount">1,024</span> kudos</div>
<div itemprop="articleBody"><p>Text</p></div>
</article>"""
    )
    assert extract_post_metrics(html, BASE) == PostPageMetrics(comments=12, likes=1024)


def test_unpublished_numbers_are_none_not_zero() -> None:
    html = page(
        head="""<script type="application/ld+json">
{"@context": "https://schema.org", "@type": "BlogPosting", "headline": "No numbers"}</script>""",
        body="<p>12 comments</p>",
    )
    assert extract_post_metrics(html, BASE) == PostPageMetrics()
    assert extract_post_metrics("", BASE) == PostPageMetrics()
    assert extract_post_metrics("<html><body>plain</body></html>", BASE) == PostPageMetrics()


def test_numbers_on_other_types_are_ignored() -> None:
    html = page(
        head="""<script type="application/ld+json">{"@context": "https://schema.org",
 "@type": "Product", "commentCount": 4, "interactionStatistic": {"@type": "InteractionCounter",
 "interactionType": "LikeAction", "userInteractionCount": 9}}</script>"""
    )
    assert extract_post_metrics(html, BASE) == PostPageMetrics()


def test_home_subscribers_from_graph() -> None:
    html = page(
        head="""<script type="application/ld+json">{"@context": "https://schema.org", "@graph": [
  {"@type": "WebSite", "url": "https://blog.example/"},
  {"@type": "Blog", "interactionStatistic": {"@type": "InteractionCounter",
   "interactionType": "https://schema.org/FollowAction", "userInteractionCount": "1,843"}},
  {"@type": "BlogPosting", "interactionStatistic": {"@type": "InteractionCounter",
   "interactionType": "FollowAction", "userInteractionCount": 999999}}
]}</script>"""
    )
    assert extract_home_metrics(html, "https://blog.example/") == HomeMetrics(subscribers=1843)


def test_home_takes_largest_of_follow_and_subscribe() -> None:
    html = page(
        body="""<div itemscope itemtype="https://schema.org/Person"><span itemprop="name">Ann</span>
<div itemprop="interactionStatistic" itemscope itemtype="https://schema.org/InteractionCounter">
<meta itemprop="interactionType" content="https://schema.org/SubscribeAction">
<meta itemprop="userInteractionCount" content="640"></div>
<div itemprop="interactionStatistic" itemscope itemtype="https://schema.org/InteractionCounter">
<meta itemprop="interactionType" content="https://schema.org/FollowAction">
<meta itemprop="userInteractionCount" content="212"></div></div>"""
    )
    assert extract_home_metrics(html, "https://blog.example/").subscribers == 640


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ('<meta name="blog:visitors:today" content="4,321">', 4321),
        ('<div class="stats" data-visitors-today="88">Visitors today: 88</div>', 88),
        (
            """<section class="widget widget_visitor_counter"><ul>
<li>Today: <span class="today">1,287</span></li><li>Total: <span class="total">482,113</span>
</li></ul></section>""",
            1287,
        ),
        (
            """<div id="counter" class="box Visitor-Box"><div class="inner">
<span class="today label">Today 73</span> <span class="yesterday">81</span></div></div>""",
            73,
        ),
        # A "today" span outside any counter widget is not a visitor count.
        ('<p class="news"><span class="today">3</span> new posts</p>', None),
        ('<div class="counter"><span class="total">500</span></div>', None),
    ],
)
def test_home_daily_visitors(markup: str, expected: int | None) -> None:
    html = page(body=markup)
    assert extract_home_metrics(html, "https://blog.example/").daily_visitors == expected


def test_home_visitor_markup_precedence() -> None:
    html = page(
        head='<meta name="blog:visitors:today" content="10">',
        body='<div data-visitors-today="20"></div><div class="counter">'
        '<span class="today">30</span></div>',
    )
    assert extract_home_metrics(html, "https://blog.example/") == HomeMetrics(daily_visitors=10)
