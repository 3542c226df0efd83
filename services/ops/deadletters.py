"""Reading and re-driving dead-letter queues (the `offload dlq` commands and tests use this)."""

import json
import logging
from typing import Any

import pika
import psycopg
import redis

from services.common import jobs, topology
from services.common.config import ServiceSettings

log = logging.getLogger(__name__)


def _describe(properties: pika.BasicProperties, body: bytes) -> dict[str, Any]:
    headers = properties.headers or {}
    args, kwargs, _ = json.loads(body)
    return {
        "task_id": headers.get("id"),
        "task": headers.get("task"),
        "job_id": kwargs.get("job_id"),
        "kwargs": kwargs,
        "args": args,
        "reason": headers.get("x-offload-reason"),
        "error": headers.get("x-offload-error"),
        "failed_at": headers.get("x-offload-failed-at"),
        "queue": headers.get("x-offload-queue"),
    }


def peek(amqp_url: str, spec: topology.QueueSpec, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` dead letters of a queue, left in place and in order."""
    connection = pika.BlockingConnection(topology.pika_parameters(amqp_url))
    try:
        channel = connection.channel()
        letters = []
        for _ in range(limit):
            method, properties, body = channel.basic_get(spec.dead_letter_queue, auto_ack=False)
            if method is None:
                break
            letters.append(_describe(properties, body))
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        return letters
    finally:
        connection.close()


def redrive(settings: ServiceSettings, spec: topology.QueueSpec, limit: int) -> int:
    """Move up to `limit` dead letters back to their queue; their jobs become queued again."""
    connection = pika.BlockingConnection(topology.pika_parameters(settings.amqp_url))
    cache: redis.Redis = redis.Redis.from_url(settings.redis_url)
    moved = 0
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        with psycopg.connect(settings.database_url, autocommit=True) as db:
            for _ in range(limit):
                method, properties, body = channel.basic_get(spec.dead_letter_queue)
                if method is None:
                    break
                letter = _describe(properties, body)
                headers = {
                    k: v
                    for k, v in (properties.headers or {}).items()
                    if not k.startswith("x-offload-") and k != "x-death"
                }
                headers["retries"] = 0  # a re-driven task gets its full retry budget again
                if letter["job_id"]:
                    jobs.reopen(db, letter["job_id"])
                if letter["task_id"]:
                    for key in cache.scan_iter(f"offload:deliveries:{letter['task_id']}:*"):
                        cache.delete(key)
                channel.basic_publish(
                    topology.TASK_EXCHANGE,
                    spec.name,
                    body,
                    properties=pika.BasicProperties(
                        headers=headers,
                        content_type=properties.content_type,
                        content_encoding=properties.content_encoding,
                        correlation_id=properties.correlation_id,
                        priority=properties.priority,
                        delivery_mode=2,
                    ),
                    mandatory=True,
                )
                channel.basic_ack(method.delivery_tag)
                moved += 1
                log.info("re-drove task %s (job %s)", letter["task_id"], letter["job_id"])
    finally:
        cache.close()
        connection.close()
    return moved
