"""Campaigns as the gateway handles them: create, send (a job), cancel, read stats."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.common.contracts.push import JOB_KIND, SEND_CAMPAIGN, queue_for
from services.common.store import campaigns
from services.gateway.campaigns.schemas import CampaignCreate
from services.gateway.errors import CampaignNotFound, CampaignStateConflict
from services.gateway.ids import parse_id
from services.gateway.jobs.admission import Admission, JobRequest

# A campaign whose job failed for good or was cancelled through /v1/jobs shows that status: no
# worker will move it on, whatever its own row last said.
STATUS = (
    "CASE WHEN c.status IN ('scheduled', 'processing') AND j.status IN ('failed', 'cancelled') "
    "THEN j.status ELSE c.status END"
)
SELECT_CAMPAIGNS = (
    f"SELECT c.id, {STATUS} AS status, c.title, c.body, c.data, c.priority, c.target, c.send_at, "
    "c.job_id, c.created_at FROM campaigns c LEFT JOIN jobs j ON j.id = c.job_id"
)


def _stored_statuses(shown: str | None) -> list[str]:
    """The row statuses a campaign shown as `shown` can have (so the status index is used)."""
    if shown in ("failed", "cancelled"):
        return [shown, "scheduled", "processing"]
    return [shown] if shown else []


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
        uid = parse_id(campaign_id, CampaignNotFound, "campaign")
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(f"{SELECT_CAMPAIGNS} WHERE c.id = %s", (uid,))
            row = await cur.fetchone()
        if row is None:
            raise CampaignNotFound(f"no campaign with id {campaign_id}")
        return row

    async def list(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"{SELECT_CAMPAIGNS} WHERE (%(s)s::text IS NULL "
                f"OR (c.status = ANY(%(stored)s) AND {STATUS} = %(s)s)) "
                "ORDER BY c.created_at DESC LIMIT %(n)s",
                {"s": status, "stored": _stored_statuses(status), "n": limit},
            )
            return await cur.fetchall()

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
        uid = parse_id(campaign_id, CampaignNotFound, "campaign")
        async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT {STATUS} AS status, c.total, c.sent, c.succeeded, c.failed, "
                "c.started_at, c.completed_at "
                "FROM campaigns c LEFT JOIN jobs j ON j.id = c.job_id WHERE c.id = %s",
                (uid,),
            )
            row = await cur.fetchone()
            if row is None:
                raise CampaignNotFound(f"no campaign with id {campaign_id}")
            await cur.execute(
                "SELECT code, count FROM campaign_failures WHERE campaign_id = %s", (uid,)
            )
            failures = {f["code"]: f["count"] for f in await cur.fetchall()}
        return stats_view(row, failures, datetime.now(UTC))
