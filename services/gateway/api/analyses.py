"""Blogger-score analyses: submit a blog, get a job (or the fresh cached score at once)."""

import json
from typing import Annotated, Any
from uuid import uuid4

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import JSONResponse

from services.common.contracts.analysis import (
    ANALYZE_BLOG,
    JOB_KIND,
    inflight_key,
    score_cache_key,
)
from services.common.jobs import job_view
from services.common.logs import request_id_var
from services.gateway.deps import ApiKey, ClientsDep, IdempotencyKeyHeader, key_scope
from services.gateway.errors import JobNotFound
from services.gateway.jobs.schemas import Accepted, AnalysisRequest, ErrorBody, JobView
from services.gateway.jobs.service import ACTIVE, Idempotency, request_hash

router = APIRouter(prefix="/v1/analyses", tags=["analyses"])

# KEYS: score cache, in-flight claim; ARGV: new job id, claim TTL.
_ADMIT = """
local cached = redis.call('GET', KEYS[1])
if cached then return {'cached', cached} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2]) then return {'claimed', ARGV[1]} end
return {'inflight', redis.call('GET', KEYS[2])}
"""


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses={
        200: {"model": JobView, "description": "A score under an hour old: the finished job"},
        503: {"model": ErrorBody, "description": "Broker unavailable; retry after Retry-After"},
    },
)
async def submit_analysis(
    body: Annotated[AnalysisRequest, Body()],
    clients: ClientsDep,
    api_key: ApiKey,
    response: Response,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Queue a blogger-score analysis of a blog."""
    payload = {"blog_url": body.blog_url}
    idem = None
    if idempotency_key is not None:
        idem = Idempotency(
            key_scope(api_key),
            idempotency_key,
            request_hash(payload),
            clients.settings.idempotency_ttl_s,
        )
        replay = await clients.jobs.find_idempotent(idem)
        if replay is not None:
            return _accepted(replay, response)

    # One round trip: a fresh cached score, else claim the blog for a new job, else the job
    # already crawling it (concurrent requests for one blog share one crawl).
    job_id = uuid4()
    key = inflight_key(body.blog_url)
    ttl = clients.settings.analysis_inflight_ttl_s
    found, value = await clients.redis.eval(  # type: ignore[misc]
        _ADMIT, 2, score_cache_key(body.blog_url), key, str(job_id), str(ttl)
    )
    if found == b"cached":
        finished = await _finished_job(clients, json.loads(value)["job_id"])
        if finished is not None:
            return JSONResponse(finished, status_code=status.HTTP_200_OK)
    elif found == b"inflight":
        running = await _active_job(clients, value)
        if running is not None:
            return _accepted(running, response)
        await clients.redis.set(key, str(job_id), ex=ttl)
    try:
        submitted = await clients.jobs.submit(
            clients.publisher,
            ANALYZE_BLOG,
            JOB_KIND,
            payload,
            priority=body.priority,
            request_id=request_id_var.get(),
            idempotency=idem,
            job_id=job_id,
        )
    except BaseException:
        await clients.redis.delete(key)
        raise
    return _accepted(submitted.job, response)


def _accepted(job: dict[str, Any], response: Response) -> dict[str, Any]:
    response.headers["Location"] = f"/v1/jobs/{job['id']}"
    return {"job_id": str(job["id"]), "status": job["status"]}


async def _finished_job(clients: ClientsDep, job_id: str) -> dict[str, Any] | None:
    try:
        job = await clients.jobs.get(job_id)
    except JobNotFound:
        return None
    return job_view(job) if job["status"] == "succeeded" else None


async def _active_job(clients: ClientsDep, raw_id: bytes | None) -> dict[str, Any] | None:
    if raw_id is None:
        return None
    try:
        job = await clients.jobs.get(raw_id.decode())
    except JobNotFound:
        return None
    return job if job["status"] in ACTIVE else None
