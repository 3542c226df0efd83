"""The broker restarts: accepted jobs survive it on disk, and the gateway and a running pool
reconnect by themselves. Runs against a throwaway RabbitMQ node (deploy/rabbitmq's files),
never the machine's shared one."""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pika
import pytest

from services.common.topology import pika_parameters
from tests.conftest import api
from tests.integration.conftest import get_job, submit, wait_for_job
from tests.support.blogserver import BlogServer
from tests.support.processes import start_gateway, start_worker, wait_until
from tests.support.rabbitmq_node import Node, deployed_node

pytestmark = pytest.mark.integration

USER, PASSWORD = "offload-app", "restart-test-pass"


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    with deployed_node(USER, PASSWORD) as node:
        yield node


def amqp_url(node: Node) -> str:
    return f"amqp://{quote(USER)}:{quote(PASSWORD)}@127.0.0.1:{node.amqp_port}/offload"


def restart(node: Node) -> None:
    """Stop and start the broker application: every connection drops, queues come back from
    disk (the Erlang VM stays, so the node keeps its name and ports)."""
    node.ctl("stop_app")
    node.ctl("start_app")
    node.ctl("await_startup")


def ready_messages(node: Node, queue: str) -> int:
    """Messages ready in a queue, as the broker counts them now (management stats lag)."""
    connection = pika.BlockingConnection(pika_parameters(amqp_url(node)))
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def submit_when_accepted(client: httpx.Client, url: str, timeout: float = 30) -> str:
    """Submit until the gateway answers 202 (503 while it reconnects); the job id."""
    accepted: list[str] = []

    def attempt() -> bool:
        response = client.post("/v1/analyses", json={"blog_url": url})
        assert response.status_code in (202, 503), response.text
        if response.status_code == 202:
            accepted.append(response.json()["job_id"])
        return bool(accepted)

    wait_until(attempt, timeout, "the gateway to accept jobs again", step=0.5)
    return accepted[0]


def test_jobs_accepted_before_a_broker_restart_run_after_it(
    node: Node, clean: None, blogs: BlogServer, log_dir: Path
) -> None:
    broker = {"OFFLOAD_AMQP_URL": amqp_url(node)}
    gateway, base_url = start_gateway(log_dir, **broker)
    try:
        with api(base_url) as client:
            # Accepted while no pool runs: the job waits in the durable queue.
            waiting = submit(client, blogs.url("wordpress"))
            restart(node)
            assert ready_messages(node, "analyzer") == 1  # persisted across the restart
            assert get_job(client, waiting)["status"] == "queued"
            # The gateway reconnects without being restarted.
            second = submit_when_accepted(client, blogs.url("atom"))

            worker = start_worker("analyzer", "analyzer", log_dir, concurrency=1, **broker)
            try:
                first_done = wait_for_job(client, waiting, timeout=60)
                second_done = wait_for_job(client, second, timeout=60)
                # A pool that is running when the broker restarts consumes again afterwards.
                restart(node)
                third = submit_when_accepted(client, blogs.url("sparse"))
                third_done = wait_for_job(client, third, timeout=90)
            finally:
                worker.stop()
    finally:
        gateway.stop()
    assert [first_done["status"], second_done["status"], third_done["status"]] == ["succeeded"] * 3
