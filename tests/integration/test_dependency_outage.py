"""A worker that picks a message up while Redis or Postgres is unreachable never acks it: the
message goes back until the dependency returns, and the job completes (issue 12, item 1).

Only the worker reaches the dependency through a proxy the test cuts; the gateway and the
machine's shared servers are untouched."""

import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from services.common.worker.jobtask import MAX_WORKER_KILLS
from tests.conftest import api
from tests.e2e.test_reports import COLUMNS, rows, wait_job, wait_ready
from tests.integration.test_report_reliability import gateway, storage
from tests.support import environment
from tests.support.processes import start_worker, wait_until
from tests.support.proxy import TcpProxy

# A gateway on its own storage and a clean platform, as the other report reliability tests.
__all__ = ["gateway", "storage"]

pytestmark = pytest.mark.integration

# dependency: (the worker's setting, the URL the suite uses for it)
DEPENDENCIES = {
    "redis": ("OFFLOAD_REDIS_URL", environment.REDIS_URL),
    "postgres": ("OFFLOAD_DATABASE_URL", environment.DATABASE_URL),
}
# Long enough for more put-backs than MAX_WORKER_KILLS (2 s pool timeout + 2 s pause each).
OUTAGE_S = 15.0


def through(proxy: TcpProxy, url: str) -> str:
    """`url` with its host and port replaced by the proxy's."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize("dependency", sorted(DEPENDENCIES))
def test_a_report_picked_up_during_an_outage_succeeds_once_the_dependency_is_back(
    dependency: str, gateway: str, storage: Path, tmp_path: Path
) -> None:
    variable, url = DEPENDENCIES[dependency]
    target = urlsplit(url).port
    assert target is not None
    with TcpProxy(target) as proxy:
        worker = start_worker(
            "pdfgen",
            "pdfgen",
            tmp_path,
            concurrency=1,
            OFFLOAD_STORAGE_URL=f"file://{storage}",
            OFFLOAD_DB_POOL_TIMEOUT_S="2",
            **{variable: through(proxy, url)},
        )
        try:
            proxy.stop()  # the outage: refused connections, live ones dropped
            with api(gateway) as client:
                accepted = client.post(
                    "/v1/reports", json={"title": "Outage", "columns": COLUMNS, "rows": rows(50)}
                )
                assert accepted.status_code == 202, accepted.text
                report_id, job_id = accepted.json()["report_id"], accepted.json()["job_id"]
                wait_until(lambda: job_id in worker.log(), 30, "the worker to take the message")
                time.sleep(OUTAGE_S)  # it keeps failing to start the job meanwhile
                during = client.get(f"/v1/jobs/{job_id}").json()
                proxy.start()
                report = wait_ready(client, report_id, timeout=90)
                job = wait_job(client, job_id, timeout=30)
            log = worker.log()
        finally:
            worker.stop()
    assert during["status"] == "queued", during
    assert report["status"] == "ready", (report, log[-3000:])
    assert job["status"] == "succeeded", job
    # Put back again and again, more often than a poison message may kill its worker: waiting
    # out an outage does not count as a delivery that killed the worker.
    assert log.count("put back") > MAX_WORKER_KILLS, log[-3000:]
    assert "poison_message" not in log
