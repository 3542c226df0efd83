"""The topology declared in code, what kombu declares, and deploy/rabbitmq agree."""

import json
from pathlib import Path

import pika
import pytest

from services.common import topology
from services.common.worker.app import kombu_queues
from tests.support import environment

DEFINITIONS = Path(__file__).resolve().parents[2] / "deploy/rabbitmq/definitions.json"


def test_deploy_definitions_are_generated_from_code() -> None:
    on_disk = json.loads(DEFINITIONS.read_text())
    for key, value in topology.definitions().items():
        assert on_disk[key] == value, (
            f"{key} drifted: run `offload topology export --output {DEFINITIONS}`"
        )


def test_every_queue_has_priority_and_a_dead_letter_queue() -> None:
    for spec in topology.QUEUES:
        arguments = spec.arguments()
        assert arguments["x-max-priority"] == topology.MAX_PRIORITY
        assert arguments["x-dead-letter-exchange"] == topology.DEAD_LETTER_EXCHANGE
        assert spec.dead_letter_queue == f"{spec.name}.dlq"


def test_kombu_declares_the_same_arguments() -> None:
    for queue in kombu_queues(None):
        assert queue.queue_arguments == topology.queue_named(queue.name).arguments()
        assert queue.durable


@pytest.mark.integration
def test_declare_is_idempotent_and_queues_are_durable(platform: None) -> None:
    topology.declare(environment.AMQP_URL)
    topology.declare(environment.AMQP_URL)
    connection = pika.BlockingConnection(topology.pika_parameters(environment.AMQP_URL))
    try:
        channel = connection.channel()
        for spec in topology.QUEUES:
            # A passive declare with other arguments would fail; re-declaring the same succeeds.
            channel.queue_declare(spec.name, durable=True, arguments=spec.arguments())
            channel.queue_declare(spec.dead_letter_queue, durable=True)
    finally:
        connection.close()


def test_kombu_style_vhost_urls_work_with_pika() -> None:
    assert topology.pika_parameters("amqp://g:p@h:5672//").virtual_host == "/"
    assert topology.pika_parameters("amqp://g:p@h:5672/offload-test").virtual_host == "offload-test"
