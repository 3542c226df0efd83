"""The pusher's contract: campaigns fanned out to batches of devices.

A campaign's send is one job. `pusher.send_campaign` streams the target's device ids and
publishes one `pusher.send_batch` per keyset range of at most 500 devices; the batch that
settles last completes the campaign (a counter, not a chord).
"""

from collections.abc import Mapping
from typing import Literal
from uuid import UUID

from pydantic import Field

from services.common.contracts import MESSAGE_PRIORITY, TaskContract, TaskPayload

JOB_KIND = "campaign"
BULK_QUEUE = "pusher.bulk"
URGENT_QUEUE = "pusher.urgent"
# FCM's limit on a message's payload (notification + data), in bytes.
FCM_PAYLOAD_LIMIT = 4096

CampaignStatus = Literal["draft", "scheduled", "processing", "completed", "cancelled", "failed"]


class SendCampaign(TaskPayload):
    """Fan a campaign out into batch tasks."""

    job_id: UUID
    campaign_id: UUID


class SendBatch(TaskPayload):
    """Send a campaign to the target devices whose ids lie in (after_id, last_id]."""

    job_id: UUID
    campaign_id: UUID
    batch_no: int = Field(ge=0)
    after_id: int = Field(ge=0)
    last_id: int = Field(ge=0)


SEND_CAMPAIGN = TaskContract(name="pusher.send_campaign", queue=BULK_QUEUE, payload=SendCampaign)
SEND_BATCH = TaskContract(name="pusher.send_batch", queue=BULK_QUEUE, payload=SendBatch)
DISPATCH_DUE = "pusher.dispatch_due_campaigns"


def queue_for(priority: str) -> str:
    """Urgent campaigns have their own queue and pool; bulk ones share the other."""
    return URGENT_QUEUE if priority == "high" else BULK_QUEUE


def message_priority(priority: str) -> int:
    return MESSAGE_PRIORITY[priority]


def payload_size(title: str, body: str, data: Mapping[str, str]) -> int:
    """Bytes FCM counts against its 4 KB limit: notification and data keys and values."""
    size = len(b"title") + len(title.encode()) + len(b"body") + len(body.encode())
    return size + sum(len(key.encode()) + len(value.encode()) for key, value in data.items())
