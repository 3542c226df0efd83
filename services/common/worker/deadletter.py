"""Dead-lettering with a reason: a failed task's message, re-published to its dead-letter queue.

RabbitMQ's own dead-lettering records only "rejected"; operators need to know why. So a task
that fails for good publishes a copy of its message (same task id, name and arguments, so it
can be re-driven as it is) to `offload.dlx` with x-offload-* headers saying what went wrong.
"""

import logging
from datetime import UTC, datetime

from celery.app.task import Task

from services.common import topology

log = logging.getLogger(__name__)

REASON_HEADERS = ("x-offload-reason", "x-offload-error", "x-offload-failed-at", "x-offload-queue")


def dead_letter(task: Task, reason: str, error: str) -> None:
    """Publish the running task's message to its queue's dead-letter queue, with confirm."""
    request = task.request
    queue = (request.delivery_info or {}).get("routing_key") or task.app.conf.task_default_queue
    message = task.app.amqp.create_task_message(
        request.id,
        task.name,
        request.args or (),
        request.kwargs or {},
        retries=request.retries or 0,
        root_id=request.root_id,
        parent_id=request.parent_id,
    )
    headers = dict(message.headers)
    headers.update(
        {
            "x-offload-reason": reason,
            "x-offload-error": error[:2000],
            "x-offload-failed-at": datetime.now(UTC).isoformat(),
            "x-offload-queue": queue,
        }
    )
    for name in ("offload_request_id", "offload_published_at"):
        value = getattr(request, name, None)
        if value is not None:
            headers[name] = value
    with task.app.producer_or_acquire() as producer:
        producer.publish(
            message.body,
            exchange=topology.DEAD_LETTER_EXCHANGE,
            routing_key=queue,
            headers=headers,
            serializer="json",
            delivery_mode=2,
            retry=True,
            **message.properties,
        )
    log.warning("dead-lettered %s[%s] from %s: %s", task.name, request.id, queue, reason)
