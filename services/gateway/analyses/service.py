"""Accepting an analysis: a fresh cached score answers at once, one crawl per blog at a time.

One Redis round trip decides: a score under an hour old (its finished job is the answer),
else this request claims the blog for its new job, else the job already crawling it is the
answer (concurrent requests for one blog share one crawl). The claim is undone when the job
is not created. Without Redis there is no way to keep one crawl per blog: the request gets a
503 with Retry-After, and routes that do not need Redis keep working.
"""

import logging
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from services.common.contracts.analysis import (
    ANALYZE_BLOG,
    JOB_KIND,
    ScoreCacheEntry,
    inflight_key,
    score_cache_key,
)
from services.common.errors import REDIS_UNAVAILABLE
from services.common.jobs import JobStatus
from services.gateway.analyses.schemas import AnalysisRequest
from services.gateway.errors import RedisUnavailable
from services.gateway.jobs.admission import Admission, JobRequest
from services.gateway.jobs.idempotency import Idempotency
from services.gateway.jobs.service import ACTIVE, JobService

log = logging.getLogger(__name__)

# KEYS: score cache, in-flight claim; ARGV: new job id, claim TTL.
_ADMIT = """
local cached = redis.call('GET', KEYS[1])
if cached then return {'cached', cached} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then return {'claimed', ARGV[1]} end
return {'inflight', redis.call('GET', KEYS[2])}
"""


@dataclass(frozen=True)
class Admitted:
    """The job that answers an analysis request; `cached` when it is a finished score."""

    job: dict[str, Any]
    cached: bool = False


class AnalysisAdmission:
    """Admits analyses through the score cache and the per-blog in-flight claim."""

    def __init__(
        self,
        redis: "aioredis.Redis",
        admission: Admission,
        jobs: JobService,
        inflight_ttl_s: int,
        retry_after_s: int,
    ) -> None:
        self._redis = redis
        self._admission = admission
        self._jobs = jobs
        self._inflight_ttl_s = inflight_ttl_s
        self._retry_after = str(retry_after_s)

    async def submit(
        self, body: AnalysisRequest, idem: Idempotency | None, request_id: str | None
    ) -> Admitted:
        """The cached score's job, the blog's running job, or a new one."""
        replay = await self._admission.replay(idem)
        if replay is not None:
            return Admitted(replay)
        request = JobRequest(
            ANALYZE_BLOG,
            JOB_KIND,
            {"blog_url": body.blog_url},
            priority=body.priority,
            request_id=request_id,
            idempotency=idem,
        )
        key, ttl = inflight_key(body.blog_url), self._inflight_ttl_s
        try:
            found, value = await self._redis.eval(  # type: ignore[misc]
                _ADMIT, 2, score_cache_key(body.blog_url), key, str(request.job_id), str(ttl)
            )
        except REDIS_UNAVAILABLE as exc:
            raise self._unavailable(exc) from exc
        if found == b"cached":
            entry = ScoreCacheEntry.model_validate_json(value)
            finished = await self._jobs.find(entry.job_id, (JobStatus.SUCCEEDED,))
            if finished is not None:
                return Admitted(finished, cached=True)
        elif found == b"inflight":
            running = None if value is None else await self._jobs.find(value.decode(), ACTIVE)
            if running is not None:
                return Admitted(running)
            try:
                await self._redis.set(key, str(request.job_id), ex=ttl)
            except REDIS_UNAVAILABLE as exc:
                raise self._unavailable(exc) from exc

        async def release_claim() -> None:
            try:
                await self._redis.delete(key)
            except REDIS_UNAVAILABLE as exc:  # the claim expires by itself; the real error goes on
                log.warning("in-flight claim for %s not released: %s", body.blog_url, exc)

        submitted = await self._admission.submit(request, undo=release_claim)
        return Admitted(submitted.job)

    def _unavailable(self, exc: Exception) -> RedisUnavailable:
        return RedisUnavailable(
            f"Redis did not answer ({type(exc).__name__}); the analysis was not accepted",
            headers={"Retry-After": self._retry_after},
        )
