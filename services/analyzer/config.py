"""Analyzer settings: crawl limits, score weights and references, task timing."""

from pydantic import Field, field_validator

from services.common.config import ServiceSettings

# Share of the score each metric carries when every metric is published (sums to 1).
DEFAULT_SCORE_WEIGHTS: dict[str, float] = {
    "posts_per_week": 0.20,
    "avg_comments": 0.20,
    "avg_likes": 0.15,
    "avg_views": 0.15,
    "subscribers": 0.20,
    "daily_visitors": 0.10,
}

# Value at which a metric earns its full weight; the scale is logarithmic below it, so the
# first few comments or subscribers count for more than the thousandth. The numbers describe
# a healthy, well-read personal or small-team blog, not a media site:
# - posts_per_week 5: a post every working day is as regular as a blog usually gets.
# - avg_comments 50: a lively comment section per post; most blogs get under 10.
# - avg_likes 100: likes are cheaper than comments, so the bar is twice as high.
# - avg_views 5,000: a post read by thousands is widely read for an independent blog.
# - subscribers 10,000: followers/neighbours of a well-known blog on its platform.
# - daily_visitors 5,000: the "today" counter of a popular blog on a typical weekday.
DEFAULT_SCORE_REFERENCES: dict[str, float] = {
    "posts_per_week": 5.0,
    "avg_comments": 50.0,
    "avg_likes": 100.0,
    "avg_views": 5_000.0,
    "subscribers": 10_000.0,
    "daily_visitors": 5_000.0,
}


def _merge_known(
    value: dict[str, float], defaults: dict[str, float], name: str
) -> dict[str, float]:
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise ValueError(f"{name}: unknown metrics {unknown}; known are {sorted(defaults)}")
    negative = sorted(key for key, number in value.items() if number < 0)
    if negative:
        raise ValueError(f"{name}: values must not be negative: {negative}")
    return {**defaults, **value}


class AnalyzerSettings(ServiceSettings):
    """Analyzer worker settings, read from OFFLOAD_* environment variables."""

    crawl_allow_private: bool = False
    crawl_max_posts: int = Field(default=30, ge=1)
    crawl_per_host_concurrency: int = Field(default=4, ge=1)
    crawl_timeout_s: float = Field(default=10.0, gt=0)
    crawl_max_feed_pages: int = Field(default=5, ge=1)
    crawl_max_page_bytes: int = Field(default=2_000_000, ge=1)
    crawl_max_redirects: int = Field(default=5, ge=0)
    crawl_user_agent: str = "OffloadAnalyzer/0.1 (blog score crawler)"
    # JSON objects in the environment; given keys override the defaults, 0 turns a metric off.
    score_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS))
    score_references: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SCORE_REFERENCES)
    )
    cache_ttl_s: int = Field(default=3600, ge=0)
    task_soft_time_limit_s: int = Field(default=60, ge=1)
    task_time_limit_s: int = Field(default=90, ge=1)
    max_retries: int = Field(default=2, ge=0)
    # First retry delay; later retries grow from it (the task applies the backoff).
    retry_backoff_s: float = Field(default=10, ge=0)

    @field_validator("score_weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        return _merge_known(value, DEFAULT_SCORE_WEIGHTS, "score_weights")

    @field_validator("score_references")
    @classmethod
    def _check_references(cls, value: dict[str, float]) -> dict[str, float]:
        merged = _merge_known(value, DEFAULT_SCORE_REFERENCES, "score_references")
        zero = sorted(key for key, number in merged.items() if number <= 0)
        if zero:
            raise ValueError(f"score_references: values must be positive: {zero}")
        return merged
