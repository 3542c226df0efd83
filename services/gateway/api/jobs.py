"""Job status, live progress and cancellation, for every kind of job."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.common.jobs import JobStatus
from services.gateway.deps import ApiKey, ClientsDep, JobRow
from services.gateway.errors import ErrorBody
from services.gateway.jobs.schemas import JobView
from services.gateway.jobs.view import job_view

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

FINISHED = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}
# Clients reconnect after this (EventSource does so by itself); it bounds idle streams.
STREAM_MAX_S = 600.0
POLL_INTERVAL_S = 0.25


@router.get("/{job_id}", response_model=JobView, responses={404: {"model": ErrorBody}})
async def get_job(job: JobRow, _: ApiKey) -> dict[str, Any]:
    """Status, progress, result or error of a job."""
    return job_view(job)


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={404: {"model": ErrorBody}},
)
async def job_events(
    row: JobRow, request: Request, clients: ClientsDep, _: ApiKey
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: a `job` event whenever status or progress changes, until it ends."""
    job = job_view(row)
    deadline = time.monotonic() + STREAM_MAX_S
    last: tuple[Any, ...] | None = None
    while True:
        state = (job["status"], job["progress"])
        if state != last:
            last = state
            yield ServerSentEvent(data=job, event="job", id=f"{job['status']}:{job['progress']}")
        if job["status"] in FINISHED or time.monotonic() > deadline:
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_INTERVAL_S)
        job = job_view(await clients.jobs.get(row["id"]))


@router.delete(
    "/{job_id}",
    response_model=JobView,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def cancel_job(job_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Cancel a queued or running job; workers skip or stop it, even after a restart."""
    return job_view(await clients.jobs.cancel(job_id))
