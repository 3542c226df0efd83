"""The AMQP topology, declared in one place and used by the gateway, workers and deploy/.

Every service queue is a durable classic queue with x-max-priority, dead-lettering to its own
dead-letter queue through the `offload.dlx` exchange. Task messages are published to the
`offload` direct exchange with the queue name as routing key.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pika

TASK_EXCHANGE = "offload"
DEAD_LETTER_EXCHANGE = "offload.dlx"
MAX_PRIORITY = 10


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


def definitions(vhost: str = "/") -> dict[str, Any]:
    """The topology as a RabbitMQ definitions fragment (exchanges, queues, bindings)."""
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
    return {"exchanges": exchanges, "queues": queues, "bindings": bindings}
