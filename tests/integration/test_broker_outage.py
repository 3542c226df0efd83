"""The broker goes away under the gateway: fast 503s with Retry-After, nothing half-accepted,
not ready, and a recovery that needs no restart."""

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import api
from tests.integration.conftest import WorkerFactory, query, submit, wait_for_job
from tests.support import environment
from tests.support.blogserver import BlogServer
from tests.support.processes import Service, start_gateway
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration

# Requests spread over an outage longer than aio-pika's 5 s reconnect interval, so the gateway
# has to come back from failed reconnection attempts, not from its first one.
REQUESTS_DURING_OUTAGE = 6
OUTAGE_REQUEST_INTERVAL_S = 1.2


@pytest.fixture(scope="module")
def broker_proxy() -> Iterator[TcpProxy]:
    """A cuttable link to the test broker (only the gateway goes through it)."""
    broker = urlsplit(environment.AMQP_URL)
    with TcpProxy(broker.port or 5672, broker.hostname or "127.0.0.1") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def proxied_gateway(
    platform: None, log_dir: Path, broker_proxy: TcpProxy
) -> Iterator[tuple[Service, str]]:
    broker = urlsplit(environment.AMQP_URL)
    netloc = f"{broker.username}:{broker.password}@127.0.0.1:{broker_proxy.port}"
    url = urlunsplit((broker.scheme, netloc, broker.path, broker.query, ""))
    service, base_url = start_gateway(log_dir, OFFLOAD_AMQP_URL=url)
    try:
        yield service, base_url
    finally:
        service.stop()


def job_count() -> int:
    return int(query("SELECT count(*) FROM jobs")[0][0])


def test_a_broker_outage_answers_503_at_once_and_the_gateway_recovers_by_itself(
    proxied_gateway: tuple[Service, str],
    broker_proxy: TcpProxy,
    workers: WorkerFactory,
    blogs: BlogServer,
    clean: None,
) -> None:
    _, base_url = proxied_gateway
    workers(concurrency=1)
    with api(base_url) as client:
        before_outage = submit(client, blogs.url("sparse"))
        assert broker_proxy.connections >= 1, "the gateway does not go through the proxy"
        assert wait_for_job(client, before_outage)["status"] == "succeeded"
        rows = job_count()

        broker_proxy.stop()
        for n in range(REQUESTS_DURING_OUTAGE):
            time.sleep(OUTAGE_REQUEST_INTERVAL_S if n else 0)
            started = time.perf_counter()
            response = client.post("/v1/analyses", json={"blog_url": blogs.url("wordpress")})
            elapsed = time.perf_counter() - started
            assert response.status_code == 503, (n, response.text)
            assert elapsed < 2.0, f"request {n} took {elapsed:.2f} s to fail"
            assert int(response.headers["retry-after"]) > 0
            assert response.json()["error"]["code"] == "broker_unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["ready"] is False
        assert ready.json()["checks"]["broker"] is False
        assert ready.json()["checks"]["database"] is True
        assert job_count() == rows, "a job the broker never confirmed was left behind"

        broker_proxy.start()
        job_id = submit_when_accepted(client, blogs.url("wordpress"), timeout=30)
        assert client.get("/readyz").status_code == 200
        job = wait_for_job(client, job_id)

    assert job["status"] == "succeeded", job
    assert job["result"]["metrics"] == blogs.blog("wordpress").expected_metrics()
    assert job_count() == rows + 1


def submit_when_accepted(client: httpx.Client, url: str, timeout: float) -> str:
    """POST every 0.25 s until the gateway accepts; every refusal must be a quick 503."""
    deadline = time.monotonic() + timeout
    while True:
        started = time.perf_counter()
        response = client.post("/v1/analyses", json={"blog_url": url})
        elapsed = time.perf_counter() - started
        if response.status_code == 202:
            job_id: str = response.json()["job_id"]
            return job_id
        assert response.status_code == 503, response.text
        assert elapsed < 2.0, f"a refusal took {elapsed:.2f} s"
        assert time.monotonic() < deadline, f"the gateway did not recover in {timeout} s"
        time.sleep(0.25)


def test_a_silent_broker_is_a_503_after_the_publish_timeout_not_a_hang(
    proxied_gateway: tuple[Service, str], broker_proxy: TcpProxy, blogs: BlogServer, clean: None
) -> None:
    _, base_url = proxied_gateway
    broker_proxy.start()
    with api(base_url) as client:
        submit_when_accepted(client, blogs.url("atom"), timeout=30)
        rows = job_count()

        # The connection stays up but the broker never answers: only the confirm timeout
        # (OFFLOAD_PUBLISH_TIMEOUT_S, 1.5 s) stands between the client and a hung request.
        broker_proxy.pause()
        try:
            for n in range(3):
                started = time.perf_counter()
                response = client.post("/v1/analyses", json={"blog_url": blogs.url("sparse")})
                elapsed = time.perf_counter() - started
                assert response.status_code == 503, (n, response.text)
                assert elapsed < 2.0, f"request {n} took {elapsed:.2f} s to fail"
                assert int(response.headers["retry-after"]) > 0
        finally:
            broker_proxy.resume()
        assert job_count() == rows, "a job the broker never confirmed was left behind"

        submit_when_accepted(client, blogs.url("sparse"), timeout=30)
    assert job_count() == rows + 1
