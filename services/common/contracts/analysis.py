"""The analyzer's contract: score one blog."""

from typing import Any
from uuid import UUID

from pydantic import BaseModel, field_validator

from services.common.contracts import TaskContract, TaskPayload
from services.common.contracts.blog_url import normalize_blog_url

JOB_KIND = "analysis"


class AnalyzeBlog(TaskPayload):
    """Crawl a blog and compute its blogger score."""

    job_id: UUID
    blog_url: str

    @field_validator("blog_url")
    @classmethod
    def _normalised(cls, value: str) -> str:
        return normalize_blog_url(value)


ANALYZE_BLOG = TaskContract(name="analyzer.analyze_blog", queue="analyzer", payload=AnalyzeBlog)


class ScoreCacheEntry(BaseModel):
    """A finished score in the cache (written by the analyzer, read by the gateway too)."""

    job_id: UUID
    result: dict[str, Any]


def score_cache_key(blog_url: str) -> str:
    """Redis key of the cached finished job for a normalised blog URL."""
    return f"offload:analyzer:score:{blog_url}"


def inflight_key(blog_url: str) -> str:
    """Redis key naming the job currently crawling a normalised blog URL."""
    return f"offload:analyzer:inflight:{blog_url}"
