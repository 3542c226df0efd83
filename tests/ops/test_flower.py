"""Flower as docker-compose.yml configures it, run against the real broker and a real pool.

The same Flower release as the compose image (mher/flower:2.0.1), started with the compose
service's command and environment; only addresses and credentials point at the test broker.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import deployment, environment
from tests.support.processes import free_port, http_ok, start_process, start_worker

pytestmark = pytest.mark.e2e

COMPOSE_IMAGE = "mher/flower:2.0.1"


@pytest.fixture(scope="module")
def flower(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    log_dir: Path = tmp_path_factory.mktemp("flower")
    service = deployment.resolved_compose()["services"]["flower"]
    assert service["image"] == COMPOSE_IMAGE
    command = deployment.command(service)
    assert command[:2] == ["celery", "flower"]
    env = deployment.environment(service)
    user, _, password = env["FLOWER_BASIC_AUTH"].partition(":")
    port = free_port()
    env.update(
        CELERY_BROKER_URL=environment.AMQP_URL,
        FLOWER_BROKER_API="http://guest:guest@127.0.0.1:15672/api/",
        FLOWER_PORT=str(port),
        FLOWER_ADDRESS="127.0.0.1",  # the container listens on every interface; a test, loopback
    )
    base_url = f"http://127.0.0.1:{port}"
    pool = start_worker("analyzer", "analyzer", log_dir, concurrency=1, name="flower-analyzer")
    with (
        pool,
        start_process(
            "flower",
            ["-m", "celery", *command[1:]],
            environment.service_env(**env),
            log_dir,
            ready=http_ok(f"{base_url}/healthcheck"),
            timeout=60,
            what="Flower to answer",
            step=0.2,
        ),
    ):
        yield {"url": base_url, "auth": (user, password), "pool": pool}


def test_the_compose_health_check_needs_no_login_and_the_ui_does(flower: dict[str, Any]) -> None:
    assert httpx.get(f"{flower['url']}/healthcheck").text == "OK"
    assert httpx.get(f"{flower['url']}/").status_code == 401
    assert httpx.get(f"{flower['url']}/", auth=flower["auth"]).status_code == 200


def test_flower_sees_the_pool_and_its_queue(flower: dict[str, Any]) -> None:
    client = httpx.Client(base_url=flower["url"], auth=flower["auth"], timeout=10)
    workers: dict[str, Any] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not workers:
        workers = client.get("/api/workers", params={"refresh": "1"}).json()
        time.sleep(0.5)
    assert any(name.startswith("flower-analyzer-") for name in workers), workers
    # Queue details come through the management API (FLOWER_BROKER_API).
    queues = {q["name"]: q for q in client.get("/api/queues/length").json()["active_queues"]}
    assert queues["analyzer"]["arguments"]["x-max-priority"] == 10
    metrics = httpx.get(f"{flower['url']}/metrics").text  # Prometheus scrapes it without a login
    assert "flower_worker_online" in metrics
