"""Celery task protocol v2 messages, built without importing Celery.

The gateway publishes these itself (aio-pika, publisher confirms) and Celery workers consume
them as if `apply_async` had sent them. See Celery's "Message Protocol" documentation.
"""

import json
import socket
import time
from dataclasses import dataclass
from typing import Any

ORIGIN = f"gateway@{socket.gethostname()}"


@dataclass(frozen=True)
class CeleryMessage:
    """Body, headers and AMQP properties of one task message."""

    body: bytes
    headers: dict[str, Any]
    correlation_id: str
    priority: int


def build(
    task_name: str,
    task_id: str,
    kwargs: dict[str, Any],
    *,
    priority: int,
    request_id: str | None,
    published_at: float | None = None,
) -> CeleryMessage:
    """A protocol-v2 message for `task_name(**kwargs)` whose task id (and root id) is `task_id`."""
    headers: dict[str, Any] = {
        "lang": "py",
        "task": task_name,
        "id": task_id,
        "shadow": None,
        "eta": None,
        "expires": None,
        "group": None,
        "group_index": None,
        "retries": 0,
        "timelimit": [None, None],
        "root_id": task_id,
        "parent_id": None,
        "argsrepr": "()",
        "kwargsrepr": repr(kwargs)[:1024],
        "origin": ORIGIN,
        "ignore_result": True,
        "replaced_task_nesting": 0,
        "stamped_headers": None,
        "stamps": {},
        # Ours: carried into the worker's log context and queue-wait metric. The time travels
        # as text: aio-pika's encoder (pamqp) writes a Python float as a 32-bit AMQP float,
        # which rounds today's Unix time to a multiple of 128 s.
        "offload_request_id": request_id,
        "offload_published_at": repr(published_at if published_at is not None else time.time()),
    }
    embed = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    body = json.dumps([[], kwargs, embed], separators=(",", ":")).encode()
    return CeleryMessage(body=body, headers=headers, correlation_id=task_id, priority=priority)
