"""Report response bodies (the spec itself is services.common.contracts.reports.ReportSpec)."""

from datetime import datetime

from pydantic import BaseModel

from services.common.contracts.reports import ReportStatus
from services.gateway.jobs.schemas import JobError


class ReportAccepted(BaseModel):
    job_id: str
    report_id: str


class ReportView(BaseModel):
    """A report's progress, and its file while it is ready."""

    report_id: str
    job_id: str
    status: ReportStatus
    pages: int | None
    chunks_done: int
    chunks_total: int | None
    bytes: int | None
    download_url: str | None
    expires_at: datetime | None
    error: JobError | None
