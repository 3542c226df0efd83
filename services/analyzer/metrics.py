"""Prometheus metrics of the analyzer domain (multiprocess mode is configured elsewhere)."""

from prometheus_client import Counter, Histogram

PAGES_FETCHED = Counter(
    "offload_analyzer_pages_fetched",
    "HTTP responses received by the crawler, by status code ('error' when none arrived).",
    ["status"],
)

CRAWL_DURATION = Histogram(
    "offload_analyzer_crawl_duration_seconds",
    "Wall time of one blog crawl, successful or not.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 90, 120),
)

CACHE_LOOKUPS = Counter(
    "offload_analyzer_cache_lookups",
    "Score cache lookups by result.",
    ["result"],
)

POSTS_PER_CRAWL = Histogram(
    "offload_analyzer_posts_per_crawl",
    "Posts taken from the feed per successful crawl.",
    buckets=(0, 1, 5, 10, 20, 30, 50, 100),
)
