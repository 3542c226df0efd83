"""One batch of a campaign: send to its devices that have no delivery yet, record outcomes.

Final outcomes (sent, or failed for good) are recorded per chunk right after FCM answers, so
a batch redelivered after its worker died resends only what was not recorded. Transient
failures (quota, unavailable, internal, timeouts) are not recorded: the task retries the
batch later and only those devices are sent again.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from psycopg import Connection, sql

from services.common.backoff import backoff_delay
from services.common.contracts.push import SendBatch
from services.common.store import campaigns
from services.common.store.campaigns import Campaign
from services.common.store.devices import deactivate
from services.common.worker.resources import Resources
from services.pusher import runtime
from services.pusher.config import PusherSettings
from services.pusher.fcm import FcmClient, Push
from services.pusher.metrics import BATCH_DURATION, CAMPAIGNS_ACTIVE, DEVICES_DEACTIVATED
from services.pusher.ratelimit import RateLimiter
from services.pusher.targeting import target_filter

log = logging.getLogger(__name__)

# The global send-rate bucket every pusher process shares.
RATE_BUCKET = "offload:pusher:send-rate"
# Devices per FCM round (sent concurrently), per rate-limit reservation and per DB write.
CHUNK = 100


@dataclass
class BatchOutcome:
    """What one pass over a batch achieved."""

    sent: int = 0
    failed: int = 0
    deactivated: int = 0
    cancelled: bool = False
    retry: list[tuple[int, str]] = field(default_factory=list)
    retry_after_s: float = 0.0


def undelivered(
    conn: Connection[Any], campaign: Campaign, after_id: int, last_id: int
) -> list[tuple[int, str]]:
    """(device id, token) of the batch's target devices this campaign has not reached yet."""
    condition, params = target_filter(campaign.target)
    query = sql.SQL(
        "SELECT d.id, d.token FROM devices d WHERE d.active AND {} "
        "AND d.id > %(after)s AND d.id <= %(last)s AND NOT EXISTS ("
        "SELECT 1 FROM deliveries x WHERE x.campaign_id = %(campaign)s AND x.device_id = d.id) "
        "ORDER BY d.id"
    ).format(condition)
    rows = conn.execute(
        query, {**params, "after": after_id, "last": last_id, "campaign": campaign.id}
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def _template(campaign: Campaign) -> Push:
    """The campaign's push with an empty token, built once per batch."""
    return Push(
        token="",
        title=campaign.title,
        body=campaign.body,
        data={**campaign.data, "campaign_id": str(campaign.id)},
        priority="high" if campaign.priority == "high" else "normal",
        collapse_id=str(campaign.id),
    )


def _is_cancelled(conn: Connection[Any], campaign: Campaign) -> bool:
    return campaigns.status(conn, campaign.id) in (None, "cancelled")


async def send_batch(
    conn: Connection[Any],
    campaign: Campaign,
    devices: Sequence[tuple[int, str]],
    fcm: FcmClient,
    limiter: RateLimiter,
) -> BatchOutcome:
    """Send to `devices` in chunks under the global rate limit, recording final outcomes."""
    outcome = BatchOutcome()
    template = _template(campaign)
    for start in range(0, len(devices), CHUNK):
        if _is_cancelled(conn, campaign):
            outcome.cancelled = True
            break
        chunk = devices[start : start + CHUNK]
        wait = limiter.reserve(len(chunk))
        if wait > 0:
            await asyncio.sleep(wait)
        results = await fcm.send([replace(template, token=token) for _, token in chunk])
        final: list[tuple[int, bool, str | None]] = []
        to_deactivate: list[int] = []
        for (device_id, _), result in zip(chunk, results, strict=True):
            if result.ok:
                final.append((device_id, True, None))
                outcome.sent += 1
            elif result.retryable:
                outcome.retry.append((device_id, result.error_code or "UNKNOWN"))
                outcome.retry_after_s = max(outcome.retry_after_s, result.retry_after_s or 0.0)
            else:
                final.append((device_id, False, result.error_code or "UNKNOWN"))
                outcome.failed += 1
                if result.deactivate:
                    to_deactivate.append(device_id)
        if to_deactivate:
            with conn.transaction():
                campaigns.record_deliveries(conn, campaign.id, final)
                deactivated = deactivate(conn, to_deactivate, "fcm: unregistered")
            outcome.deactivated += deactivated
            DEVICES_DEACTIVATED.inc(deactivated)
        else:  # one autocommit statement: no BEGIN/COMMIT round trips
            campaigns.record_deliveries(conn, campaign.id, final)
    return outcome


def retry_delay(settings: PusherSettings, retries: int, retry_after_s: float) -> float:
    """Backoff, at least FCM's largest Retry-After, at most push_retry_delay_max_s (a longer
    wait would outlast RabbitMQ's consumer timeout)."""
    delay = max(backoff_delay(retries, settings.push_retry_backoff_s), retry_after_s)
    return min(delay, settings.push_retry_delay_max_s)


def give_up(conn: Connection[Any], campaign: Campaign, retry: list[tuple[int, str]]) -> None:
    """Record devices whose transient failures outlived every retry as failed, by code."""
    campaigns.record_deliveries(conn, campaign.id, [(d, False, code) for d, code in retry])


def deliver(
    res: Resources, settings: PusherSettings, request: SendBatch, retries: int
) -> float | None:
    """Send one batch and settle it once; a delay when its transient failures should be
    retried (only those devices are sent again), else None."""
    limiter = RateLimiter(res.redis, RATE_BUCKET, settings.push_rate_per_s)
    with BATCH_DURATION.time(), res.pool.connection() as conn:
        campaign = campaigns.load(conn, request.campaign_id)
        if campaign is None:
            return None
        if campaign.status == "processing":
            devices = undelivered(conn, campaign, request.after_id, request.last_id)

            async def send() -> BatchOutcome:
                client = await runtime.fcm_client(settings)
                return await send_batch(conn, campaign, devices, client, limiter)

            outcome = runtime.run(send())
            if outcome.retry and not outcome.cancelled:
                if retries < settings.push_max_retries:
                    delay = retry_delay(settings, retries, outcome.retry_after_s)
                    log.info(
                        "batch %d: %d devices to retry in %.1f s",
                        request.batch_no,
                        len(outcome.retry),
                        delay,
                    )
                    return delay
                give_up(conn, campaign, outcome.retry)
        campaigns.settle_batch(conn, campaign.id, request.batch_no, request.job_id)
        CAMPAIGNS_ACTIVE.set(campaigns.count_processing(conn))
    return None
