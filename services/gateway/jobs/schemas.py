"""Jobs as the public API shows them (they define the OpenAPI schema)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Progress(BaseModel):
    done: int
    total: int


class JobError(BaseModel):
    code: str = Field(examples=["blog_not_found"])
    message: str


class JobView(BaseModel):
    """A job as clients see it."""

    job_id: str
    kind: str = Field(examples=["analysis"])
    status: JobStatusName
    progress: Progress | None
    result: dict[str, Any] | None
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class Accepted(BaseModel):
    """A job the broker has confirmed; poll GET /v1/jobs/{job_id}."""

    job_id: str
    status: JobStatusName = "queued"
