"""The AMQP topology, declared in one place and used by the gateway, workers and deploy/.

Every service queue is a durable classic queue with x-max-priority, dead-lettering to its own
dead-letter queue through the `offload.dlx` exchange. Task messages are published to the
`offload` direct exchange with the queue name as routing key.
"""

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pika

TASK_EXCHANGE = "offload"
DEAD_LETTER_EXCHANGE = "offload.dlx"
MAX_PRIORITY = 10
# The vhost of a deployed stack (compose, Kubernetes); local development and tests use others.
DEPLOY_VHOST = "offload"


@dataclass(frozen=True)
class QueueSpec:
    """A service queue; its dead-letter queue is derived from its name."""

    name: str
    service: str

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.name}.dlq"

    def arguments(self) -> dict[str, Any]:
        return {
            "x-max-priority": MAX_PRIORITY,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-dead-letter-routing-key": self.name,
        }


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec("analyzer", "analyzer"),
    QueueSpec("pusher.bulk", "pusher"),
    QueueSpec("pusher.urgent", "pusher"),
    QueueSpec("pdfgen", "pdfgen"),
)


@dataclass(frozen=True)
class PolicySpec:
    """A RabbitMQ policy: settings a broker applies to matching queues without redeclaring them."""

    name: str
    pattern: str
    definition: dict[str, Any]
    description: str
    priority: int = 0


POLICIES: tuple[PolicySpec, ...] = (
    # A dead-letter queue can grow to millions of messages during an incident (a campaign whose
    # every batch fails); lazy mode keeps them on disk instead of in the broker's memory. No
    # length limit or TTL: a dead letter waits for an operator, it is never dropped.
    PolicySpec(
        name="offload-dead-letters",
        pattern="^(" + "|".join(re.escape(q.name) for q in QUEUES) + r")\.dlq$",
        definition={"queue-mode": "lazy"},
        description="dead-letter queues keep their messages on disk",
    ),
)


def queues_for(service: str) -> tuple[QueueSpec, ...]:
    """The queues one service consumes."""
    return tuple(q for q in QUEUES if q.service == service)


def queue_named(name: str) -> QueueSpec:
    """The spec of a queue by name; KeyError if no such queue exists."""
    for spec in QUEUES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def pika_parameters(amqp_url: str) -> "pika.URLParameters":
    """pika parameters for a kombu-style URL (where a path of "//" means the "/" vhost)."""
    import pika

    vhost = amqp_url.partition("://")[2].partition("/")[2]
    if vhost == "/":
        amqp_url = amqp_url[: len(amqp_url) - 1] + "%2F"
    return pika.URLParameters(amqp_url)


def declare(amqp_url: str) -> None:
    """Declare exchanges, queues and bindings on the broker (idempotent)."""
    import pika

    connection = pika.BlockingConnection(pika_parameters(amqp_url))
    try:
        channel = connection.channel()
        for exchange in (TASK_EXCHANGE, DEAD_LETTER_EXCHANGE):
            channel.exchange_declare(exchange, exchange_type="direct", durable=True)
        for spec in QUEUES:
            channel.queue_declare(spec.name, durable=True, arguments=spec.arguments())
            channel.queue_bind(spec.name, TASK_EXCHANGE, routing_key=spec.name)
            channel.queue_declare(spec.dead_letter_queue, durable=True)
            channel.queue_bind(spec.dead_letter_queue, DEAD_LETTER_EXCHANGE, routing_key=spec.name)
    finally:
        connection.close()


def apply_policies(management_url: str, vhost: str) -> None:
    """Set POLICIES on `vhost` through the management HTTP API (AMQP cannot set policies).

    A deployed broker gets them from definitions.json at boot; this gives a broker that was
    declared from code (local development, tests) the same policies.
    """
    from urllib.parse import quote, urlsplit

    import httpx

    parts = urlsplit(management_url)
    base = f"{parts.scheme}://{parts.hostname}:{parts.port or 15672}"
    auth = (parts.username or "guest", parts.password or "guest")
    with httpx.Client(base_url=base, auth=auth, timeout=10) as client:
        for policy in POLICIES:
            response = client.put(
                f"/api/policies/{quote(vhost, safe='')}/{quote(policy.name, safe='')}",
                json={
                    "pattern": policy.pattern,
                    "apply-to": "queues",
                    "priority": policy.priority,
                    "definition": policy.definition,
                },
            )
            response.raise_for_status()


def definitions(vhost: str = DEPLOY_VHOST) -> dict[str, Any]:
    """The topology as RabbitMQ definitions: vhost, policies, exchanges, queues, bindings.

    Users are not part of it: a deployment adds its own from the environment
    (deploy/rabbitmq/render-definitions.sh).
    """
    policies = [
        {
            "vhost": vhost,
            "name": policy.name,
            "pattern": policy.pattern,
            "apply-to": "queues",
            "priority": policy.priority,
            "definition": policy.definition,
        }
        for policy in POLICIES
    ]
    exchanges = [
        {
            "name": name,
            "vhost": vhost,
            "type": "direct",
            "durable": True,
            "auto_delete": False,
            "internal": False,
            "arguments": {},
        }
        for name in (TASK_EXCHANGE, DEAD_LETTER_EXCHANGE)
    ]
    queues: list[dict[str, Any]] = []
    bindings: list[dict[str, Any]] = []
    for spec in QUEUES:
        queues.append(
            {
                "name": spec.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": spec.arguments(),
            }
        )
        queues.append(
            {
                "name": spec.dead_letter_queue,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": {},
            }
        )
        for source, destination in (
            (TASK_EXCHANGE, spec.name),
            (DEAD_LETTER_EXCHANGE, spec.dead_letter_queue),
        ):
            bindings.append(
                {
                    "source": source,
                    "vhost": vhost,
                    "destination": destination,
                    "destination_type": "queue",
                    "routing_key": spec.name,
                    "arguments": {},
                }
            )
    return {
        "vhosts": [{"name": vhost}],
        "policies": policies,
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    }
