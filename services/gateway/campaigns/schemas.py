"""Campaign request and response bodies (they define the OpenAPI schema)."""

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from services.common.contracts import Priority
from services.common.contracts.push import (
    CAMPAIGN_ID_KEY,
    FCM_PAYLOAD_LIMIT,
    CampaignStatus,
    campaign_payload_size,
    fcm_reserved,
)
from services.gateway.devices.schemas import TOPIC_MAX_CHARS, USER_ID_MAX_CHARS, check_user_id

# Bounds of a campaign body (FCM_PAYLOAD_LIMIT bounds the payload as a whole); user ids and
# topics follow the device registry's rules, so a target can name only what a device can have.
USER_IDS_MAX = 10_000
TITLE_MAX_CHARS = 1000
BODY_MAX_CHARS = 4000
DATA_KEYS_MAX = 100
DATA_KEY_MAX_CHARS = 256
DATA_VALUE_MAX_CHARS = FCM_PAYLOAD_LIMIT

UserId = Annotated[str, Field(max_length=USER_ID_MAX_CHARS), AfterValidator(check_user_id)]
DataKey = Annotated[str, StringConstraints(max_length=DATA_KEY_MAX_CHARS)]
DataValue = Annotated[str, StringConstraints(max_length=DATA_VALUE_MAX_CHARS)]


class CampaignTarget(BaseModel):
    """Exactly one of: every active device, some users' devices, a topic's subscribers."""

    model_config = ConfigDict(extra="forbid")

    all: Literal[True] | None = None
    user_ids: list[UserId] | None = Field(default=None, min_length=1, max_length=USER_IDS_MAX)
    # FCM's rule for topic names, as devices register them.
    topic: str | None = Field(
        default=None, max_length=TOPIC_MAX_CHARS, pattern=r"^[a-zA-Z0-9\-_.~%]+$"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [name for name in ("all", "user_ids", "topic") if getattr(self, name)]
        if len(chosen) != 1:
            raise ValueError('target needs exactly one of "all": true, "user_ids" or "topic"')
        return self


class CampaignCreate(BaseModel):
    """A push campaign, created as a draft; POST /v1/campaigns/{id}/send starts it."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    body: str = Field(max_length=BODY_MAX_CHARS)
    data: dict[DataKey, DataValue] = Field(default_factory=dict, max_length=DATA_KEYS_MAX)
    priority: Priority = "normal"
    target: CampaignTarget
    send_at: AwareDatetime | None = None

    @field_validator("data")
    @classmethod
    def _no_reserved_keys(cls, data: dict[str, str]) -> dict[str, str]:
        reserved = [key for key in data if fcm_reserved(key)]
        if reserved:
            keys = ", ".join(f'"{key}"' for key in reserved)
            raise ValueError(f"data keys reserved by FCM: {keys}")
        if CAMPAIGN_ID_KEY in data:
            raise ValueError(f'data key "{CAMPAIGN_ID_KEY}" is reserved: the pusher sets it')
        return data

    @model_validator(mode="after")
    def _fits_fcm(self) -> Self:
        # Counted as FCM counts each push, the campaign id the pusher adds included.
        size = campaign_payload_size(self.title, self.body, self.data)
        if size > FCM_PAYLOAD_LIMIT:
            raise ValueError(
                f"payload is {size} bytes with the campaign id the pusher adds; "
                f"FCM accepts at most {FCM_PAYLOAD_LIMIT}"
            )
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
