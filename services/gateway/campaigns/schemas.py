"""Campaign request and response bodies (they define the OpenAPI schema)."""

from datetime import datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.common.contracts import Priority
from services.common.contracts.push import FCM_PAYLOAD_LIMIT, CampaignStatus, payload_size


class CampaignTarget(BaseModel):
    """Exactly one of: every active device, some users' devices, a topic's subscribers."""

    model_config = ConfigDict(extra="forbid")

    all: Literal[True] | None = None
    user_ids: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    topic: str | None = Field(default=None, pattern=r"^[a-zA-Z0-9\-_.~%]{1,900}$")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [name for name in ("all", "user_ids", "topic") if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError('target needs exactly one of "all": true, "user_ids" or "topic"')
        return self


class CampaignCreate(BaseModel):
    """A push campaign, created as a draft; POST /v1/campaigns/{id}/send starts it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=1000)
    body: str = Field(max_length=4000)
    data: dict[str, str] = Field(default_factory=dict)
    priority: Priority = "normal"
    target: CampaignTarget
    send_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _fits_fcm(self) -> Self:
        size = payload_size(self.title, self.body, self.data)
        if size > FCM_PAYLOAD_LIMIT:
            raise ValueError(f"payload is {size} bytes; FCM accepts at most {FCM_PAYLOAD_LIMIT}")
        if "campaign_id" in self.data:
            raise ValueError('data key "campaign_id" is reserved')
        return self


class CampaignView(BaseModel):
    id: str
    status: CampaignStatus
    title: str
    body: str
    data: dict[str, str]
    priority: Priority
    target: dict[str, object]
    send_at: datetime | None
    job_id: str | None
    created_at: datetime


class CampaignCreated(BaseModel):
    id: str
    status: CampaignStatus


class CampaignSent(BaseModel):
    campaign_id: str
    job_id: str
    status: CampaignStatus


class CampaignStats(BaseModel):
    """Live counters of a campaign."""

    status: CampaignStatus
    total: int
    sent: int
    succeeded: int
    failed: int
    failures_by_code: dict[str, int]
    progress: float = Field(description="0..100")
    rate_per_s: float | None
    eta_s: float | None
    started_at: datetime | None
    completed_at: datetime | None
