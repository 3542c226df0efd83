"""One blog analysis: reuse a fresh score, or crawl once (never twice at a time) and score."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from services.analyzer import cache
from services.analyzer.config import AnalyzerSettings
from services.analyzer.crawler import crawl_blog
from services.analyzer.metrics import CACHE_LOOKUPS
from services.analyzer.scoring import score_blog
from services.analyzer.store import save_score
from services.common.contracts.analysis import AnalyzeBlog
from services.common.worker.jobtask import JobContext
from services.common.worker.resources import Resources

log = logging.getLogger(__name__)


def analyze(
    payload: AnalyzeBlog, job: JobContext, settings: AnalyzerSettings, res: Resources
) -> dict[str, Any]:
    """The blog's score result, from the cache when fresh, else from a new crawl."""
    url = payload.blog_url
    cached = cache.get_fresh(res.redis, url)
    if cached is not None:
        CACHE_LOOKUPS.labels("hit").inc()
        return cached.result
    CACHE_LOOKUPS.labels("miss").inc()
    with cache.crawl_lock(
        res.redis,
        url,
        ttl_s=settings.task_time_limit_s,
        wait_s=settings.task_soft_time_limit_s / 2,
        owner=str(job.job_id),
    ) as acquired:
        if not acquired:
            log.warning("crawl lock for %s still held; crawling anyway", url)
        cached = cache.get_fresh(res.redis, url)
        if cached is not None:
            log.info("another job crawled %s while this one waited", url)
            return cached.result
        snapshot = asyncio.run(crawl_blog(url, settings, on_progress=job.progress))
        result = score_blog(
            snapshot, settings.score_weights, settings.score_references, now=datetime.now(UTC)
        )
        save_score(res.pool, result, job.job_id)
        cache.put(res.redis, url, job.job_id, result, settings.cache_ttl_s)
    return result
