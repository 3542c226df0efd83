"""Job status, live progress and cancellation, for every kind of job."""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
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
# A stream reads its job every POLL_MIN_S after a change, backing off by POLL_BACKOFF while
# nothing changes, to at most POLL_MAX_S (a queued or slow job costs ~0.5 reads a second).
POLL_MIN_S = 0.25
POLL_MAX_S = 2.0
POLL_BACKOFF = 1.5


@router.get("/{job_id}", response_model=JobView, responses={404: {"model": ErrorBody}})
async def get_job(job: JobRow, _: ApiKey) -> dict[str, Any]:
    """Status, progress, result or error of a job."""
    return job_view(job)


async def _stream_slot(row: JobRow, clients: ClientsDep, key: ApiKey) -> AsyncIterator[None]:
    """A slot for one event stream (after the job's 404), held until the response is over:
    FastAPI leaves this block only once the stream ended, failed or lost its client."""
    with clients.streams.admit(key):
        yield


StreamSlot = Annotated[None, Depends(_stream_slot)]


@router.get(
    "/{job_id}/events",
    response_class=EventSourceResponse,
    responses={404: {"model": ErrorBody}, 429: {"model": ErrorBody}},
)
async def job_events(
    row: JobRow, request: Request, clients: ClientsDep, _: StreamSlot
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: a `job` event whenever status or progress changes, until it ends.

    Streams are limited per API key and per gateway process (429 with Retry-After past them).
    """
    job = job_view(row)
    deadline = time.monotonic() + STREAM_MAX_S
    last: tuple[Any, ...] | None = None
    interval = POLL_MIN_S
    while True:
        state = (job["status"], job["progress"])
        if state != last:
            last = state
            interval = POLL_MIN_S
            yield ServerSentEvent(data=job, event="job", id=f"{job['status']}:{job['progress']}")
        else:
            interval = min(interval * POLL_BACKOFF, POLL_MAX_S)
        if job["status"] in FINISHED or time.monotonic() > deadline:
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(interval)
        job = job_view(await clients.jobs.get(row["id"]))


@router.delete(
    "/{job_id}",
    response_model=JobView,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def cancel_job(job_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Cancel a queued or running job; workers skip or stop it, even after a restart."""
    return job_view(await clients.jobs.cancel(job_id))
