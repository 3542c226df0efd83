"""Redis down at the gateway (issue 12, item 4): analyses, which need it for the score cache
and one crawl per blog, answer 503 with Retry-After and the JSON error body at once, down or
silent; reports, which do not, keep being accepted; readiness names Redis as degraded and
keeps the gateway in service. Only the gateway reaches Redis through the test's proxy."""

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.conftest import api, purge_queues
from tests.e2e.test_reports import COLUMNS, rows
from tests.support import environment
from tests.support.processes import start_gateway
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration

REDIS_TIMEOUT_S = 1.0


@pytest.fixture
def redis_proxy() -> Iterator[TcpProxy]:
    port = urlsplit(environment.REDIS_URL).port
    assert port is not None
    with TcpProxy(port) as proxy:
        yield proxy


@pytest.fixture
def gateway(platform: None, clean: None, tmp_path: Path, redis_proxy: TcpProxy) -> Iterator[str]:
    purge_queues()
    redis_url = urlunsplit(
        urlsplit(environment.REDIS_URL)._replace(netloc=f"127.0.0.1:{redis_proxy.port}")
    )
    service, base_url = start_gateway(
        tmp_path,
        OFFLOAD_REDIS_URL=redis_url,
        OFFLOAD_REDIS_TIMEOUT_S=str(REDIS_TIMEOUT_S),
        OFFLOAD_STORAGE_URL=f"file://{tmp_path / 'storage'}",
    )
    try:
        yield base_url
    finally:
        service.stop()


def analyse(client: httpx.Client, blog: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.post("/v1/analyses", json={"blog_url": f"https://{blog}.example.com/"})
    return response, time.monotonic() - started


def assert_redis_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) > 0
    error = response.json()["error"]
    assert error["code"] == "redis_unavailable", error
    assert "Redis" in error["message"]


@pytest.mark.parametrize("outage", ["down", "silent"])
def test_routes_that_need_redis_answer_503_and_the_others_keep_working(
    outage: str, gateway: str, redis_proxy: TcpProxy
) -> None:
    with api(gateway) as client:
        accepted, _ = analyse(client, "before")
        assert accepted.status_code == 202, accepted.text

        redis_proxy.stop() if outage == "down" else redis_proxy.pause()
        refused, took = analyse(client, "during")
        assert_redis_unavailable(refused)
        assert took < 5 * REDIS_TIMEOUT_S, f"answered after {took:.1f} s"

        report = client.post(
            "/v1/reports", json={"title": "No Redis", "columns": COLUMNS, "rows": rows(5)}
        )
        assert report.status_code == 202, report.text
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["redis"] is False
        assert ready.json()["degraded"] == ["redis"]

        redis_proxy.start() if outage == "down" else redis_proxy.resume()
        deadline = time.monotonic() + 15
        while (again := analyse(client, "after")[0]).status_code == 503:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.2)
        assert again.status_code == 202, again.text
        assert client.get("/readyz").json()["degraded"] == []
