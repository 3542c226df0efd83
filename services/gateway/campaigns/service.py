"""Campaigns as the gateway handles them: create, send (a job), cancel, read stats."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.common.contracts.push import JOB_KIND, SEND_CAMPAIGN, queue_for
from services.common.store import campaigns
from services.gateway.campaigns.schemas import CampaignCreate
from services.gateway.errors import CampaignNotFound, CampaignStateConflict
from services.gateway.ids import fetch_or_404, parse_id
from services.gateway.jobs.admission import Admission, JobRequest


def campaign_view(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "id": str(row["id"]), "job_id": str(row["job_id"]) if row["job_id"] else None}


def stats_view(row: dict[str, Any], failures: dict[str, int], now: datetime) -> dict[str, Any]:
    """Counters plus derived progress, rate and ETA."""
    total, sent, status = row["total"], row["sent"], row["status"]
    progress = 100.0 if status == "completed" else (round(100 * sent / total, 1) if total else 0.0)
    rate = eta = None
    if row["started_at"] is not None:
        elapsed = ((row["completed_at"] or now) - row["started_at"]).total_seconds()
        rate = round(sent / elapsed, 1) if elapsed > 0 else None
        if status == "completed":
            eta = 0.0
        elif status == "processing" and rate:
            eta = round(max(total - sent, 0) / rate, 1)
    return {
        "status": status,
        "total": total,
        "sent": sent,
        "succeeded": row["succeeded"],
        "failed": row["failed"],
        "failures_by_code": failures,
        "progress": progress,
        "rate_per_s": rate,
        "eta_s": eta,
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
    }


class CampaignService:
    """Campaigns as the API handles them: create, send as a job, cancel, read."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool

    async def create(self, spec: CampaignCreate) -> dict[str, Any]:
        async with self._pool.connection() as conn:
            return await campaigns.create(
                conn,
                uuid4(),
                title=spec.title,
                body=spec.body,
                data=spec.data,
                priority=spec.priority,
                target=spec.target.model_dump(exclude_none=True),
                send_at=spec.send_at,
            )

    async def get(self, campaign_id: str) -> dict[str, Any]:
        """The campaign as shown; CampaignNotFound (404) for an id never issued."""
        return await fetch_or_404(
            self._pool, campaigns.fetch_view, campaign_id, CampaignNotFound, "campaign"
        )

    async def list(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn:
            return await campaigns.list_views(conn, status, limit)

    async def send(
        self, campaign_id: str, admission: Admission, request_id: str | None
    ) -> tuple[UUID, str]:
        """Start (or schedule) a draft campaign as a job; (job id, new status)."""
        uid = parse_id(campaign_id, CampaignNotFound, "campaign")
        request = JobRequest(
            SEND_CAMPAIGN,
            JOB_KIND,
            {"campaign_id": str(uid)},
            priority="normal",
            request_id=request_id,
        )
        async with self._pool.connection() as conn:
            claimed = await campaigns.claim_for_send(conn, uid, request.job_id)
        if claimed is None:
            campaign = await self.get(campaign_id)
            raise CampaignStateConflict(
                f"campaign {campaign_id} is {campaign['status']}, not a draft"
            )
        status, priority = claimed
        request = replace(request, priority=priority, queue=queue_for(priority))

        async def back_to_draft() -> None:
            async with self._pool.connection() as conn:
                await campaigns.release_send(conn, uid, request.job_id)

        if status == "scheduled":
            await admission.record(request, undo=back_to_draft)
        else:
            await admission.submit(request, undo=back_to_draft)
        return request.job_id, status

    async def cancel(self, campaign_id: str) -> dict[str, Any]:
        """Cancel a draft, scheduled or processing campaign; remaining batches are skipped."""
        uid = parse_id(campaign_id, CampaignNotFound, "campaign")
        async with self._pool.connection() as conn:
            row = await campaigns.cancel(conn, uid)
        if row is None:
            campaign = await self.get(campaign_id)
            raise CampaignStateConflict(f"campaign {campaign_id} is already {campaign['status']}")
        return row

    async def stats(self, campaign_id: str) -> dict[str, Any]:
        """Counters, failures by code, progress, rate and ETA."""
        row, failures = await fetch_or_404(
            self._pool, campaigns.fetch_stats, campaign_id, CampaignNotFound, "campaign"
        )
        return stats_view(row, failures, datetime.now(UTC))
