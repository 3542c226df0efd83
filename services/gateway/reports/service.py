"""Reports as the gateway handles them: accept a spec (a job), read status, find the file."""

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from services.common.contracts.reports import JOB_KIND, PLAN_REPORT, ReportSpec
from services.common.store import reports
from services.gateway.errors import ReportGone, ReportNotFound
from services.gateway.ids import fetch_or_404
from services.gateway.jobs.admission import Admission, JobRequest
from services.gateway.jobs.idempotency import Idempotency


def report_view(row: dict[str, Any]) -> dict[str, Any]:
    """Public shape; a failed or cancelled job shows through as the report's status."""
    status = row["status"]
    if row["job_status"] in ("failed", "cancelled") and status not in ("ready", "expired"):
        status = row["job_status"]
    error = None
    if status == "failed" and row["error_code"]:
        error = {"code": row["error_code"], "message": row["error_message"] or ""}
    ready = status == "ready"
    return {
        "report_id": str(row["id"]),
        "job_id": str(row["job_id"]),
        "status": status,
        "pages": row["pages"],
        "chunks_done": row["chunks_done"],
        "chunks_total": row["chunks_total"],
        "bytes": row["bytes"] if ready else None,
        "download_url": f"/v1/reports/{row['id']}/file" if ready else None,
        "expires_at": row["expires_at"] if ready else None,
        "error": error,
    }


class ReportService:
    """Reports as the API handles them: accept a spec as a job, read status, find the file."""

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[Any]]) -> None:
        self._pool = pool

    async def submit(
        self,
        spec: ReportSpec,
        upload_id: str,
        owns_upload: bool,
        admission: Admission,
        *,
        request_id: str | None,
        idempotency: Idempotency | None,
    ) -> tuple[UUID, UUID]:
        """Record the report and queue its plan task; (job id, report id)."""
        report_id = uuid4()
        request = JobRequest(
            PLAN_REPORT,
            JOB_KIND,
            {"report_id": str(report_id)},
            priority="normal",
            request_id=request_id,
            idempotency=idempotency,
        )
        columns = [column.model_dump(exclude_none=True) for column in spec.columns]
        async with self._pool.connection() as conn:
            await reports.insert(
                conn,
                report_id,
                request.job_id,
                title=spec.title,
                columns=columns,
                group_by=spec.group_by,
                upload_id=upload_id,
                owns_upload=owns_upload,
            )

        async def forget_report() -> None:
            async with self._pool.connection() as conn:
                await reports.delete(conn, report_id)

        submitted = await admission.submit(request, undo=forget_report)
        if not submitted.created:  # an idempotent replay: answer with the first report
            return submitted.job["id"], UUID(submitted.job["payload"]["report_id"])
        return request.job_id, report_id

    async def get(self, report_id: str) -> dict[str, Any]:
        """The report with its job's status; ReportNotFound (404) for an id never issued."""
        return await fetch_or_404(
            self._pool, reports.fetch_view, report_id, ReportNotFound, "report"
        )

    async def file_key(self, report_id: str) -> tuple[str, int]:
        """The storage key and size of a ready, unexpired report; ReportGone otherwise."""
        row = await self.get(report_id)
        expired = row["expires_at"] is not None and row["expires_at"] <= datetime.now(UTC)
        if row["status"] != "ready" or expired or row["file_key"] is None:
            raise ReportGone(f"report {report_id} has no file ({row['status']})")
        return row["file_key"], int(row["bytes"])
