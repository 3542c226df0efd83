"""Push campaigns: create, send, cancel, live stats, list."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, status

from services.common.contracts.push import CampaignStatus
from services.common.logs import request_id_var
from services.gateway.campaigns.schemas import (
    CampaignCreate,
    CampaignCreated,
    CampaignSent,
    CampaignStats,
    CampaignView,
)
from services.gateway.campaigns.service import campaign_view
from services.gateway.deps import ApiKey, ClientsDep
from services.gateway.errors import ErrorBody

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CampaignCreated)
async def create_campaign(
    spec: Annotated[CampaignCreate, Body()], clients: ClientsDep, _: ApiKey
) -> dict[str, Any]:
    """Create a draft campaign (payloads over FCM's 4 KB limit are a 422)."""
    row = await clients.campaigns.create(spec)
    return {"id": str(row["id"]), "status": row["status"]}


@router.get("", response_model=list[CampaignView])
async def list_campaigns(
    clients: ClientsDep,
    _: ApiKey,
    status_filter: Annotated[CampaignStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Campaigns, newest first, optionally only those in one status (e.g. processing)."""
    return [campaign_view(row) for row in await clients.campaigns.list(status_filter, limit)]


@router.get("/{campaign_id}", response_model=CampaignView, responses=NOT_FOUND)
async def get_campaign(campaign_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """One campaign."""
    return campaign_view(await clients.campaigns.get(campaign_id))


@router.post(
    "/{campaign_id}/send",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=CampaignSent,
    responses={**NOT_FOUND, 409: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def send_campaign(campaign_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Start a draft campaign now, or at its send_at (kept in Postgres, not as a broker ETA)."""
    job_id, new_status = await clients.campaigns.send(
        campaign_id, clients.admission, request_id_var.get()
    )
    return {"campaign_id": campaign_id, "job_id": str(job_id), "status": new_status}


@router.post(
    "/{campaign_id}/cancel",
    response_model=CampaignView,
    responses={**NOT_FOUND, 409: {"model": ErrorBody}},
)
async def cancel_campaign(campaign_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Cancel a campaign; batches not yet sent are skipped."""
    return campaign_view(await clients.campaigns.cancel(campaign_id))


@router.get("/{campaign_id}/stats", response_model=CampaignStats, responses=NOT_FOUND)
async def campaign_stats(campaign_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Live counters: total, sent, succeeded, failed by code, progress, rate and ETA."""
    return await clients.campaigns.stats(campaign_id)
