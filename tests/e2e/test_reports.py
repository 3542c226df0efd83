"""PDF reports end to end: real gateway and pdfgen processes sharing storage, checked page by
page with pypdf."""

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pypdf import PdfReader

from services.common.rowfiles import read_index, write_index
from services.common.storage import LocalStorage
from services.pdfgen.layout import Column, layout_for
from services.pdfgen.planning import plan_report
from tests.conftest import api, purge_queues
from tests.support import environment
from tests.support.processes import Service, free_port, start_gateway, start_worker
from tests.support.prometheus import metric

pytestmark = pytest.mark.e2e

COLUMNS = [
    {"key": "id", "label": "ID", "width": 60},
    {"key": "region", "label": "Region"},
    {"key": "customer", "label": "Customer"},
    {"key": "amount", "label": "Amount", "align": "right"},
]


@dataclass
class PdfStack:
    base_url: str
    pdfgen: Service
    storage: Path
    metrics_url: str


@pytest.fixture(scope="module")
def pdf_stack(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdfStack]:
    log_dir = tmp_path_factory.mktemp("logs")
    storage = tmp_path_factory.mktemp("storage")
    env = {"OFFLOAD_STORAGE_URL": f"file://{storage}", "OFFLOAD_PDF_PAGES_PER_CHUNK": "20"}
    purge_queues()
    gateway, base_url = start_gateway(log_dir, **env)
    metrics_port = free_port()
    try:
        pdfgen = start_worker(
            "pdfgen",
            "pdfgen",
            log_dir,
            concurrency=2,
            OFFLOAD_METRICS_PORT=str(metrics_port),
            **env,
        )
    except BaseException:
        gateway.stop()
        raise
    try:
        yield PdfStack(base_url, pdfgen, storage, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        pdfgen.stop()
        gateway.stop()


def rows(count: int) -> list[dict[str, Any]]:
    regions = ["North", "South", "East"]
    return [
        {
            "id": i + 1,
            "region": regions[i * len(regions) // count],
            "customer": f"Customer {i:05d}",
            "amount": round(i * 1.25, 2),
        }
        for i in range(count)
    ]


def wait_ready(client: httpx.Client, report_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        report: dict[str, Any] = client.get(f"/v1/reports/{report_id}").json()
        assert "status" in report, report
        if report["status"] in ("ready", "failed", "cancelled"):
            return report
        time.sleep(0.2)
    raise AssertionError(f"report {report_id} not ready: {report}")


def wait_job(client: httpx.Client, job_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job['status']}")


def page_text(reader: PdfReader, number: int) -> str:
    return reader.pages[number - 1].extract_text()


def test_a_2500_row_report_reads_as_one_document(pdf_stack: PdfStack, clean: None) -> None:
    data = rows(2_500)
    before = httpx.get(pdf_stack.metrics_url).text
    plan = plan_report(
        [(None, len(data))], layout_for([Column.from_dict(c) for c in COLUMNS]).rows_per_page, 20
    )
    with api(pdf_stack.base_url) as client:
        accepted = client.post(
            "/v1/reports", json={"title": "Q3 sales", "columns": COLUMNS, "rows": data}
        )
        assert accepted.status_code == 202, accepted.text
        report_id, job_id = accepted.json()["report_id"], accepted.json()["job_id"]
        report = wait_ready(client, report_id)
        job = wait_job(client, job_id)
        download = client.get(report["download_url"])
    assert report["status"] == "ready", report
    assert report["pages"] == plan.total_pages
    assert report["chunks_done"] == report["chunks_total"] == len(plan.chunks) > 1
    assert job["status"] == "succeeded"
    assert job["progress"] == {"done": len(plan.chunks), "total": len(plan.chunks)}
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert int(download.headers["content-length"]) == report["bytes"] == len(download.content)

    reader = PdfReader(io.BytesIO(download.content))
    total = plan.total_pages
    assert len(reader.pages) == total
    boundary = plan.chunks[0].page_count  # last page of chunk 0; the next is chunk 1's first
    for number in (1, boundary, boundary + 1, total):
        text = page_text(reader, number)
        assert f"Page {number:,} of {total:,}" in text, (number, text[-200:])
        assert "Q3 sales" in text and "Customer" in text and "Amount" in text  # header repeated
    assert "Customer 00000" in page_text(reader, 1)
    assert "Customer 02499" in page_text(reader, total)
    assert reader.metadata is not None and reader.metadata.title == "Q3 sales"
    assert reader.metadata.creation_date is not None
    outline = reader.outline
    assert len(outline) == len(plan.outline) == 3  # one bookmark per 1,000 rows
    assert [reader.get_destination_page_number(entry) + 1 for entry in outline] == [
        entry.page for entry in plan.outline
    ]
    chunks_left = list((pdf_stack.storage / "reports" / report_id).rglob("chunks/*"))
    assert chunks_left == []  # chunk files are deleted after the merge
    with psycopg.connect(environment.DATABASE_URL) as conn:
        row = conn.execute(
            "SELECT created_at < progressed_at AND progressed_at <= completed_at "
            "FROM reports WHERE id = %s",
            (report_id,),
        ).fetchone()
    assert row == (True,)  # the workers' steps moved it on (the merge started last)

    # Counted across pool children (recycled ones included: multiprocess mode).
    after = httpx.get(pdf_stack.metrics_url).text

    def grew(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert grew("offload_pdfgen_pages_rendered_total") == total
    assert grew("offload_pdfgen_chunk_duration_seconds_count") == len(plan.chunks)
    assert grew("offload_pdfgen_merge_duration_seconds_count") == 1
    assert grew("offload_pdfgen_bytes_stored_total") == report["bytes"]
    assert grew("offload_pdfgen_task_peak_rss_bytes_count", task="render_chunk") == len(plan.chunks)
    peak_sum = grew("offload_pdfgen_task_peak_rss_bytes_sum", task="render_chunk")
    assert 0 < peak_sum / len(plan.chunks) < 256 * 2**20  # every render task well under 256 MB


def test_a_grouped_report_from_an_upload(pdf_stack: PdfStack, clean: None) -> None:
    lines = ["id,region,customer,amount"]
    lines += [f"{r['id']},{r['region']},{r['customer']},{r['amount']}" for r in rows(300)]
    lines.insert(5, "this,line,has,too,many,fields")
    with api(pdf_stack.base_url) as client:
        upload = client.post(
            "/v1/uploads", content="\n".join(lines).encode(), headers={"Content-Type": "text/csv"}
        )
        assert upload.status_code == 201, upload.text
        assert upload.json()["rows"] == 300
        assert [e["line"] for e in upload.json()["errors"]] == [6]
        spec = {
            "title": "By region",
            "columns": COLUMNS,
            "upload_id": upload.json()["upload_id"],
            "group_by": "region",
        }
        report = wait_ready(client, client.post("/v1/reports", json=spec).json()["report_id"])
        reader = PdfReader(io.BytesIO(client.get(report["download_url"]).content))
    assert report["status"] == "ready", report
    assert [entry.title for entry in reader.outline] == ["North", "South", "East"]
    assert "North" in page_text(reader, 1)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"title": "x", "columns": [], "rows": [{"a": 1}]}, "columns"),
        (
            {"title": "x", "columns": [{"key": "a", "label": "A"}], "rows": [{"a": 1, "b": 2}]},
            "unknown column keys",
        ),
        (
            {
                "title": "x",
                "columns": [{"key": "a", "label": "A"}],
                "rows": [{"a": 1}],
                "group_by": "b",
            },
            "unknown column key",
        ),
        ({"title": "x", "columns": [{"key": "a", "label": "A"}]}, "exactly one"),
        (
            {
                "title": "x",
                "columns": [{"key": "a", "label": "A"}, {"key": "a", "label": "B"}],
                "rows": [{"a": 1}],
            },
            "unique",
        ),
        ({"title": "x", "columns": [{"key": "a", "label": "A"}], "rows": []}, "rows"),
    ],
)
def test_bad_specs_are_422(pdf_stack: PdfStack, spec: dict[str, Any], fragment: str) -> None:
    with api(pdf_stack.base_url) as client:
        response = client.post("/v1/reports", json=spec)
    assert response.status_code == 422, response.text
    assert fragment in response.text


def test_an_upload_column_that_does_not_exist_is_422(pdf_stack: PdfStack, clean: None) -> None:
    with api(pdf_stack.base_url) as client:
        upload = client.post(
            "/v1/uploads",
            content=b'{"a": 1}\n{"a": 2}\n',
            headers={"Content-Type": "application/x-ndjson"},
        ).json()
        response = client.post(
            "/v1/reports",
            json={
                "title": "x",
                "columns": [{"key": "b", "label": "B"}],
                "upload_id": upload["upload_id"],
            },
        )
        missing = client.post(
            "/v1/reports",
            json={"title": "x", "columns": [{"key": "a", "label": "A"}], "upload_id": "0" * 32},
        )
    assert response.status_code == 422 and "unknown column keys" in response.text
    assert missing.status_code == 422 and "no upload" in response.text + missing.text


def test_a_report_of_too_many_groups_fails_at_once_with_report_too_large(
    pdf_stack: PdfStack, clean: None
) -> None:
    # Every row its own group: 10,001 groups, one past the default cap.
    body = "".join(f'{{"id": {i}, "region": "r{i}"}}\n' for i in range(10_001)).encode()
    with api(pdf_stack.base_url) as client:
        upload = client.post(
            "/v1/uploads", content=body, headers={"Content-Type": "application/x-ndjson"}
        )
        assert upload.status_code == 201, upload.text
        spec = {
            "title": "One group a row",
            "columns": COLUMNS[:2],
            "upload_id": upload.json()["upload_id"],
            "group_by": "region",
        }
        accepted = client.post("/v1/reports", json=spec)
        assert accepted.status_code == 202, accepted.text
        job = wait_job(client, accepted.json()["job_id"], timeout=30)
        report = client.get(f"/v1/reports/{accepted.json()['report_id']}").json()
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "report_too_large", job
    assert "more than 10,000 groups" in job["error"]["message"]
    assert report["status"] == "failed" and report["chunks_total"] is None, report
    assert not (pdf_stack.storage / "reports" / accepted.json()["report_id"]).exists()


def test_an_upload_wider_than_the_column_cap_is_422_for_a_report(
    pdf_stack: PdfStack, clean: None
) -> None:
    storage = LocalStorage(pdf_stack.storage)
    with api(pdf_stack.base_url) as client:
        upload = client.post(
            "/v1/uploads", content=b'{"a": 1}\n', headers={"Content-Type": "application/x-ndjson"}
        ).json()
        # An upload stored before the cap, with more columns than it allows.
        index = read_index(storage, upload["upload_id"])
        wide = index.columns + [f"c{i}" for i in range(1000)]
        write_index(storage, index.model_copy(update={"columns": wide}))
        response = client.post(
            "/v1/reports",
            json={
                "title": "x",
                "columns": [{"key": "a", "label": "A"}],
                "upload_id": upload["upload_id"],
            },
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_report_spec"
    assert "more than 1000 columns" in response.json()["error"]["message"]


def test_unknown_reports_are_404(pdf_stack: PdfStack) -> None:
    with api(pdf_stack.base_url) as client:
        assert client.get("/v1/reports/nope").status_code == 404
        assert (
            client.get("/v1/reports/00000000-0000-0000-0000-000000000000/file").status_code == 404
        )
