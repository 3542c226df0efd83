"""Pusher tasks: fan a campaign out, send one batch, dispatch scheduled campaigns."""

import logging
from typing import Any

from services.common.contracts.push import (
    DISPATCH_DUE,
    SEND_BATCH,
    SEND_CAMPAIGN,
    SendBatch,
    SendCampaign,
    message_priority,
    queue_for,
)
from services.common.worker.jobtask import JobTask, backoff_delay
from services.common.worker.resources import resources
from services.common.worker.signals import header
from services.pusher import campaigns, delivery, fanout, runtime
from services.pusher.metrics import BATCH_DURATION, CAMPAIGNS_ACTIVE
from services.pusher.ratelimit import RateLimiter
from services.pusher.worker import app, settings

log = logging.getLogger(__name__)

RATE_BUCKET = "offload:pusher:send-rate"


class PusherTask(JobTask):
    abstract = True


@app.task(bind=True, base=PusherTask, name=SEND_CAMPAIGN.name)
def send_campaign(self: PusherTask, **payload: Any) -> None:
    """Stream the campaign's target devices into batch tasks."""
    request = SendCampaign.model_validate(payload)
    self.run_job(request.job_id, lambda job: _fan_out(self, request), settle=False)


def _fan_out(task: PusherTask, request: SendCampaign) -> None:
    res = resources(settings)
    with res.pool.connection() as conn:
        campaigns.claim_due(conn, request.campaign_id)
        campaign = campaigns.load(conn, request.campaign_id)
        if campaign is None or campaign.status != "processing":
            log.info("campaign %s is not processing; nothing to fan out", request.campaign_id)
            return
        queue, priority = queue_for(campaign.priority), message_priority(campaign.priority)
        headers = {"offload_request_id": header(task, "offload_request_id")}

        def publish(batch: SendBatch) -> None:
            send_batch.apply_async(
                kwargs=batch.model_dump(mode="json"),
                queue=queue,
                priority=priority,
                headers=headers,
            )

        fanout.fan_out(conn, campaign, request.job_id, settings.push_batch_size, publish)


@app.task(bind=True, base=PusherTask, name=SEND_BATCH.name)
def send_batch(self: PusherTask, **payload: Any) -> None:
    """Send one batch; retry only its transiently failed devices; settle it once."""
    request = SendBatch.model_validate(payload)
    self.run_job(request.job_id, lambda job: _deliver(self, request), settle=False)


def _deliver(task: PusherTask, request: SendBatch) -> None:
    with BATCH_DURATION.time():
        _deliver_batch(task, request)


def _deliver_batch(task: PusherTask, request: SendBatch) -> None:
    res = resources(settings)
    limiter = RateLimiter(res.redis, RATE_BUCKET, settings.push_rate_per_s)
    with res.pool.connection() as conn:
        campaign = campaigns.load(conn, request.campaign_id)
        if campaign is None:
            return
        if campaign.status == "processing":
            devices = delivery.undelivered(conn, campaign, request.after_id, request.last_id)

            async def send() -> delivery.BatchOutcome:
                client = await runtime.fcm_client(settings)
                return await delivery.send_batch(conn, campaign, devices, client, limiter)

            outcome = runtime.run(send())
            if outcome.retry and not outcome.cancelled:
                retries = task.request.retries or 0
                if retries < settings.push_max_retries:
                    delay = max(
                        backoff_delay(retries, settings.push_retry_backoff_s), outcome.retry_after_s
                    )
                    log.info(
                        "batch %d: %d devices to retry in %.1f s",
                        request.batch_no,
                        len(outcome.retry),
                        delay,
                    )
                    raise task.retry(countdown=delay, max_retries=settings.push_max_retries)
                delivery.give_up(conn, campaign, outcome.retry)
        campaigns.settle_batch(conn, campaign.id, request.batch_no, request.job_id)
        CAMPAIGNS_ACTIVE.set(campaigns.count_processing(conn))


@app.task(name=DISPATCH_DUE)
def dispatch_due_campaigns() -> int:
    """Start scheduled campaigns whose send time has come (periodic, from beat)."""
    res = resources(settings)
    started = 0
    with res.pool.connection() as conn:
        due = conn.execute(
            "SELECT id, job_id, priority FROM campaigns "
            "WHERE status = 'scheduled' AND send_at <= now() ORDER BY send_at LIMIT 100"
        ).fetchall()
        for campaign_id, job_id, priority in due:
            # Publish first: a crash before the update republishes next time (fan-out is
            # idempotent); the other order could leave a campaign processing with no fan-out.
            send_campaign.apply_async(
                kwargs={"job_id": str(job_id), "campaign_id": str(campaign_id)},
                queue=queue_for(priority),
                priority=message_priority(priority),
                task_id=str(job_id),
            )
            campaigns.claim_due(conn, campaign_id)
            started += 1
    return started
