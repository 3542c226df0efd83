"""The public shape of a job row (what GET /v1/jobs/{id} returns)."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.common.jobs import JobStatus


def job_view(row: Mapping[str, Any]) -> dict[str, Any]:
    """A job row as clients see it."""
    done, total = row["progress_done"], row["progress_total"]
    error = None
    if row["error_code"] and row["status"] in (JobStatus.FAILED, JobStatus.CANCELLED):
        error = {"code": row["error_code"], "message": row["error_message"] or ""}
    return {
        "job_id": str(row["id"]),
        "kind": row["kind"],
        "status": row["status"],
        "progress": {"done": done, "total": total} if total is not None else None,
        "result": row["result"],
        "error": error,
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
