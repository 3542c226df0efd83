"""The pusher's contract: campaigns fanned out to batches of devices.

A campaign's send is one job. `pusher.send_campaign` streams the target's device ids and
publishes one `pusher.send_batch` per keyset range of at most 500 devices; the batch that
settles last completes the campaign (a counter, not a chord).
"""

from collections.abc import Mapping
from typing import Any, Literal
from uuid import UUID

from pydantic import Field

from services.common.contracts import MESSAGE_PRIORITY, TaskContract, TaskPayload

JOB_KIND = "campaign"
BULK_QUEUE = "pusher.bulk"
URGENT_QUEUE = "pusher.urgent"
# FCM's limit on a message's payload, in bytes (2048 to a topic; campaigns send to tokens):
# https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode (INVALID_ARGUMENT).
FCM_PAYLOAD_LIMIT = 4096
# The parts of an FCM v1 message whose keys and values count against the limit: what reaches
# the device as its data and notification payload. Android's own notification fields (the tag
# the pusher sets) travel in that payload too; APNs headers and collapse_key are delivery
# options, not payload.
PAYLOAD_PARTS: tuple[tuple[str, ...], ...] = (
    ("data",),
    ("notification",),
    ("android", "notification"),
)
# Data keys FCM refuses ("Invalid data payload key"): a campaign using one fails on every device.
FCM_RESERVED_DATA_KEYS = frozenset({"", "from", "message_type", "notification"})
FCM_RESERVED_DATA_PREFIXES = ("google", "gcm")
# The data key the pusher adds to every push of a campaign (the campaign's id).
CAMPAIGN_ID_KEY = "campaign_id"
# Stands in for a campaign's id before it has one: every UUID's text is 36 characters.
_ID_PLACEHOLDER = UUID(int=0)

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


def fcm_reserved(key: str) -> bool:
    """True for a data key FCM refuses: empty, from, message_type, notification, google*, gcm*."""
    return key in FCM_RESERVED_DATA_KEYS or key.startswith(FCM_RESERVED_DATA_PREFIXES)


def campaign_message(
    title: str, body: str, data: Mapping[str, str], campaign_id: UUID
) -> dict[str, Any]:
    """The payload parts of each push of a campaign, with what the pusher adds: the campaign
    id in data and as the Android notification tag (services/pusher/delivery.py, fcm.py)."""
    return {
        "notification": {"title": title, "body": body},
        "data": {**data, CAMPAIGN_ID_KEY: str(campaign_id)},
        "android": {"notification": {"tag": str(campaign_id)}},
    }


def payload_size(message: Mapping[str, Any]) -> int:
    """Bytes of an FCM v1 message that FCM counts against its limit: UTF-8 keys and values
    of its PAYLOAD_PARTS."""
    size = 0
    for path in PAYLOAD_PARTS:
        part: Any = message
        for name in path:
            part = part.get(name) if isinstance(part, Mapping) else None
        if isinstance(part, Mapping):
            size += sum(len(str(k).encode()) + len(str(v).encode()) for k, v in part.items())
    return size


def campaign_payload_size(title: str, body: str, data: Mapping[str, str]) -> int:
    """Bytes FCM will count in every push of a campaign with this content."""
    return payload_size(campaign_message(title, body, data, _ID_PLACEHOLDER))
