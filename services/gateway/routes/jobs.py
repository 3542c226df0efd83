"""Job status and cancellation, for every kind of job."""

from typing import Any

from fastapi import APIRouter

from services.common.jobs import job_view
from services.gateway.deps import ApiKey, ClientsDep
from services.gateway.schemas import ErrorBody, JobView

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobView, responses={404: {"model": ErrorBody}})
async def get_job(job_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Status, progress, result or error of a job."""
    return job_view(await clients.jobs.get(job_id))


@router.delete(
    "/{job_id}",
    response_model=JobView,
    responses={404: {"model": ErrorBody}, 409: {"model": ErrorBody}},
)
async def cancel_job(job_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Cancel a queued or running job; workers skip or stop it, even after a restart."""
    return job_view(await clients.jobs.cancel(job_id))
