"""Publishing jobs to RabbitMQ with aio-pika and publisher confirms.

A publish returns only once the broker confirmed the (persistent) message, so a 202 means the
job is on the broker's disk. While the broker is unreachable every publish fails at once with
BrokerUnavailable; a background task keeps reconnecting.
"""

import asyncio
import itertools
import logging

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from aiormq.exceptions import AMQPError
from pamqp.commands import Basic

from services.common import topology
from services.gateway.errors import BrokerUnavailable
from services.gateway.messaging.celery_message import CeleryMessage

log = logging.getLogger(__name__)


class Publisher:
    """A robust AMQP connection with a few confirm-mode channels used in turn."""

    def __init__(self, url: str, *, channels: int, timeout_s: float, retry_after_s: int) -> None:
        self._url = url
        self._channel_count = channels
        self._timeout_s = timeout_s
        self._retry_after = str(retry_after_s)
        self._connection: AbstractRobustConnection | None = None
        self._channels: list[AbstractChannel] = []
        self._exchanges: list[AbstractExchange] = []
        self._turn = itertools.count()
        self._connector: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background; the gateway serves (and answers 503) meanwhile."""
        self._connector = asyncio.create_task(self._connect_forever(), name="amqp-connect")

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                connection = await aio_pika.connect_robust(self._url, timeout=5)
                channels, exchanges = [], []
                for _ in range(self._channel_count):
                    channel = await connection.channel(publisher_confirms=True)
                    channels.append(channel)
                    exchanges.append(
                        await channel.declare_exchange(
                            topology.TASK_EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True
                        )
                    )
            except (TimeoutError, OSError, AMQPError) as exc:
                log.warning("broker unreachable (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._connection, self._channels, self._exchanges = connection, channels, exchanges
            log.info("connected to the broker")
            return

    @property
    def ready(self) -> bool:
        """True while the connection and its channels are open."""
        connection = self._connection
        return (
            connection is not None
            and not connection.is_closed
            and bool(self._exchanges)
            and not any(c.is_closed for c in self._channels)
        )

    async def publish(self, message: CeleryMessage, routing_key: str) -> None:
        """Publish persistently and wait for the broker's confirm; BrokerUnavailable if not."""
        if not self.ready:
            raise self._unavailable("the broker is not connected")
        exchange = self._exchanges[next(self._turn) % len(self._exchanges)]
        amqp_message = aio_pika.Message(
            message.body,
            headers=message.headers,
            content_type="application/json",
            content_encoding="utf-8",
            correlation_id=message.correlation_id,
            priority=message.priority,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        try:
            confirmation = await asyncio.wait_for(
                exchange.publish(amqp_message, routing_key=routing_key, mandatory=True),
                timeout=self._timeout_s,
            )
        except (TimeoutError, AMQPError, OSError, RuntimeError) as exc:
            raise self._unavailable(f"the broker did not confirm the job: {exc!r}") from exc
        if not isinstance(confirmation, Basic.Ack):
            raise self._unavailable(f"the broker did not accept the job: {confirmation!r}")

    def _unavailable(self, why: str) -> BrokerUnavailable:
        return BrokerUnavailable(why, headers={"Retry-After": self._retry_after})

    async def close(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
        if self._connection is not None:
            await self._connection.close()
