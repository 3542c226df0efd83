"""Blogger-score analyses: submit a blog, get a job (or the fresh cached score at once)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status
from fastapi.responses import JSONResponse

from services.common.logs import request_id_var
from services.gateway.analyses.schemas import AnalysisRequest
from services.gateway.deps import ApiKey, ClientsDep, IdempotencyKeyHeader, idempotency_for
from services.gateway.errors import ErrorBody
from services.gateway.jobs.schemas import Accepted, JobView
from services.gateway.jobs.view import job_view

router = APIRouter(prefix="/v1/analyses", tags=["analyses"])


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
    idem = idempotency_for(clients, api_key, idempotency_key, {"blog_url": body.blog_url})
    admitted = await clients.analyses.submit(body, idem, request_id_var.get())
    if admitted.cached:
        return JSONResponse(job_view(admitted.job), status_code=status.HTTP_200_OK)
    response.headers["Location"] = f"/v1/jobs/{admitted.job['id']}"
    return {"job_id": str(admitted.job["id"]), "status": admitted.job["status"]}
