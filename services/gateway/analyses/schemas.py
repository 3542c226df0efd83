"""The body of an analysis request (it defines the OpenAPI schema)."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.contracts import Priority
from services.common.contracts.blog_url import normalize_blog_url

BLOG_URL_MAX_CHARS = 2048


class AnalysisRequest(BaseModel):
    """Score a blog from its home page URL."""

    model_config = ConfigDict(extra="forbid")

    blog_url: str = Field(max_length=BLOG_URL_MAX_CHARS, examples=["https://blog.example.com/"])
    priority: Priority = "normal"

    @field_validator("blog_url")
    @classmethod
    def _normalised(cls, value: str) -> str:
        return normalize_blog_url(value)
