"""Pusher tasks: fan a campaign out, send one batch, dispatch scheduled campaigns."""

from typing import Any

from services.common.contracts import TaskPayload
from services.common.contracts.push import (
    DISPATCH_DUE,
    SEND_BATCH,
    SEND_CAMPAIGN,
    SendBatch,
    SendCampaign,
)
from services.common.worker.jobtask import JobTask
from services.common.worker.resources import resources
from services.pusher import delivery, fanout
from services.pusher.worker import app, settings


class PusherTask(JobTask):
    abstract = True
    retry_backoff_s = settings.push_retry_backoff_s
    max_retries = settings.push_max_retries


@app.task(bind=True, base=PusherTask, name=SEND_CAMPAIGN.name)
def send_campaign(self: PusherTask, **payload: Any) -> None:
    """Stream the campaign's target devices into batch tasks."""
    request = SendCampaign.model_validate(payload)

    def publish(batch: TaskPayload, queue: str, priority: int) -> None:
        self.publish(send_batch, batch, queue=queue, priority=priority)

    self.run_job(
        request.job_id,
        lambda job: fanout.fan_out_campaign(
            resources(settings).pool, request, settings.push_batch_size, publish
        ),
        settle=False,
    )


@app.task(bind=True, base=PusherTask, name=SEND_BATCH.name)
def send_batch(self: PusherTask, **payload: Any) -> None:
    """Send one batch; retry only its transiently failed devices; settle it once."""
    request = SendBatch.model_validate(payload)
    self.run_job(
        request.job_id,
        lambda job: self.retry_in(
            delivery.deliver(resources(settings), settings, request, self.request.retries or 0)
        ),
        settle=False,
    )


@app.task(name=DISPATCH_DUE)
def dispatch_due_campaigns() -> int:
    """Start scheduled campaigns whose send time has come (periodic, from beat)."""

    def publish(request: TaskPayload, queue: str, priority: int) -> None:
        assert isinstance(request, SendCampaign)
        send_campaign.apply_async(
            kwargs=request.model_dump(mode="json"),
            queue=queue,
            priority=priority,
            task_id=str(request.job_id),
        )

    return fanout.dispatch_due(resources(settings).pool, publish)
