"""Request and response bodies of the public API (they define the OpenAPI schema)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.contracts import Priority
from services.common.contracts.blog_url import normalize_blog_url

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


class AnalysisRequest(BaseModel):
    """Score a blog from its home page URL."""

    model_config = ConfigDict(extra="forbid")

    blog_url: str = Field(max_length=2048, examples=["https://blog.example.com/"])
    priority: Priority = "normal"

    @field_validator("blog_url")
    @classmethod
    def _normalised(cls, value: str) -> str:
        return normalize_blog_url(value)


class ErrorBody(BaseModel):
    error: JobError
