"""Pdfgen under failure: a worker killed mid-report, a merge delivered twice, expiry."""

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from services.common.config import ServiceSettings
from services.common.worker.app import create_celery
from tests.conftest import api, purge_queues
from tests.e2e.test_reports import COLUMNS, rows, wait_job, wait_ready
from tests.support import environment
from tests.support.processes import start_gateway, start_worker, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    path = tmp_path / "storage"
    path.mkdir()
    return path


@pytest.fixture
def gateway(platform: None, clean: None, tmp_path: Path, storage: Path) -> Iterator[str]:
    purge_queues()
    service, base_url = start_gateway(tmp_path, OFFLOAD_STORAGE_URL=f"file://{storage}")
    try:
        yield base_url
    finally:
        service.stop()


def files_of(storage: Path, report_id: str) -> list[str]:
    root = storage / "reports" / report_id
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def submit(base_url: str, count: int) -> tuple[str, str]:
    with api(base_url) as client:
        accepted = client.post(
            "/v1/reports", json={"title": "Ledger", "columns": COLUMNS, "rows": rows(count)}
        )
    assert accepted.status_code == 202, accepted.text
    return accepted.json()["report_id"], accepted.json()["job_id"]


def test_a_worker_killed_mid_report_still_gives_exactly_one_file(
    gateway: str, storage: Path, tmp_path: Path
) -> None:
    env = {"OFFLOAD_STORAGE_URL": f"file://{storage}", "OFFLOAD_PDF_PAGES_PER_CHUNK": "10"}
    worker = start_worker("pdfgen", "pdfgen", tmp_path, concurrency=1, **env)
    try:
        report_id, job_id = submit(gateway, 10_000)
        with api(gateway) as client:
            wait_until(
                lambda: (client.get(f"/v1/reports/{report_id}").json()["chunks_done"] or 0) >= 3,
                60,
                "rendering to be under way",
                step=0.05,
            )
            # A recycled child may be between replacement and start for a moment.
            wait_until(lambda: bool(worker.children()), 10, "a pool child", step=0.01)
            os.kill(worker.children()[0].pid, signal.SIGKILL)
            killed_at = client.get(f"/v1/reports/{report_id}").json()
            assert killed_at["status"] == "rendering", killed_at
            report = wait_ready(client, report_id, timeout=180)
            job = wait_job(client, job_id)
    finally:
        worker.stop()
    assert report["status"] == "ready", report
    assert report["chunks_done"] == report["chunks_total"]
    assert job["status"] == "succeeded"
    assert files_of(storage, report_id) == ["report.pdf"]  # one file, no chunk left behind


def test_a_merge_delivered_twice_does_not_make_a_second_report(
    gateway: str, storage: Path, tmp_path: Path
) -> None:
    env = {"OFFLOAD_STORAGE_URL": f"file://{storage}"}
    worker = start_worker("pdfgen", "pdfgen", tmp_path, concurrency=1, **env)
    try:
        report_id, job_id = submit(gateway, 500)
        with api(gateway) as client:
            first = wait_ready(client, report_id)
            wait_job(client, job_id)
            pdf = storage / "reports" / report_id / "report.pdf"
            before = (pdf.stat().st_mtime_ns, pdf.read_bytes())
            celery = create_celery(
                "pdfgen",
                ServiceSettings(amqp_url=environment.AMQP_URL, redis_url=environment.REDIS_URL),
            )
            celery.send_task(
                "pdfgen.merge_report",
                queue="pdfgen",
                kwargs={"job_id": job_id, "report_id": report_id},
            )
            time.sleep(3)
            again = client.get(f"/v1/reports/{report_id}").json()
    finally:
        worker.stop()
    assert again == first
    assert (pdf.stat().st_mtime_ns, pdf.read_bytes()) == before
    assert files_of(storage, report_id) == ["report.pdf"]


def test_expired_reports_are_removed_by_the_periodic_job(
    gateway: str, storage: Path, tmp_path: Path
) -> None:
    env = {"OFFLOAD_STORAGE_URL": f"file://{storage}"}
    worker = start_worker("pdfgen", "pdfgen", tmp_path, concurrency=1, **env)
    try:
        report_id, _ = submit(gateway, 200)
        with api(gateway) as client:
            stale, fresh = (upload_rows(client) for _ in range(2))
            nine_days_ago = time.time() - 9 * 24 * 3600  # the TTL is 7 days, the grace 1 h
            for path in (storage / "uploads" / stale).iterdir():
                os.utime(path, (nine_days_ago, nine_days_ago))
            ready: dict[str, Any] = wait_ready(client, report_id)
            assert client.get(ready["download_url"]).status_code == 200
            with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
                conn.execute(
                    "UPDATE reports SET expires_at = now() - interval '1 second' WHERE id = %s",
                    (report_id,),
                )
            celery = create_celery(
                "pdfgen",
                ServiceSettings(amqp_url=environment.AMQP_URL, redis_url=environment.REDIS_URL),
            )
            cleanup = celery.send_task("pdfgen.cleanup_expired_reports", queue="pdfgen")
            removed = cleanup.get(timeout=30)  # the test waits on a task, no task does
            expired = client.get(f"/v1/reports/{report_id}").json()
            gone = client.get(ready["download_url"])
    finally:
        worker.stop()
    assert removed == {"reports": 1, "uploads": 1}
    assert expired["status"] == "expired"
    assert gone.status_code == 404
    assert files_of(storage, report_id) == []
    # The report's own upload went with it, the expired one too; the fresh one stays.
    assert sorted(p.name for p in (storage / "uploads").iterdir()) == [fresh]


def upload_rows(client: httpx.Client) -> str:
    created = client.post(
        "/v1/uploads", content=b'{"id": 1}\n', headers={"Content-Type": "application/x-ndjson"}
    )
    assert created.status_code == 201, created.text
    upload_id: str = created.json()["upload_id"]
    return upload_id
