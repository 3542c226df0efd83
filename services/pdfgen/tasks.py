"""Pdfgen tasks: plan a report, render one chunk of pages, merge, expire old reports."""

import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from uuid import UUID

from services.common.contracts.reports import (
    CLEANUP_EXPIRED,
    MERGE_REPORT,
    PLAN_REPORT,
    RENDER_CHUNK,
    MergeReport,
    PlanReport,
    RenderChunk,
)
from services.common.rowfiles import iter_rows, read_index
from services.common.storage import Storage, storage_from_settings
from services.common.worker.jobtask import JobContext, JobTask
from services.common.worker.resources import resources
from services.common.worker.signals import header
from services.common.store import reports
from services.pdfgen import retention
from services.pdfgen.errors import PdfgenError
from services.pdfgen.layout import Column, Layout, layout_for
from services.pdfgen.memory import peak_bytes, reset_peak
from services.pdfgen.merge import merge_chunks
from services.pdfgen.metrics import (
    BYTES_STORED,
    CHUNK_DURATION,
    MERGE_DURATION,
    PAGES_RENDERED,
    TASK_PEAK_RSS,
)
from services.pdfgen.planning import ReportPlan, plan_report
from services.pdfgen.render import render_chunk as render_pages
from services.pdfgen.worker import app, settings

log = logging.getLogger(__name__)


class PdfgenTask(JobTask):
    abstract = True
    fail_on = (PdfgenError,)


def _storage() -> Storage:
    return storage_from_settings(settings)


def _layout(report: Mapping[str, Any]) -> Layout:
    return layout_for([Column.from_dict(column) for column in report["columns"]])


def group_sizes(
    storage: Storage, upload_id: str, group_by: str | None
) -> list[tuple[str | None, int]]:
    """(group, row count) in input order: consecutive rows with one value form a group."""
    if group_by is None:
        return [(None, read_index(storage, upload_id).rows)]
    groups: list[tuple[str | None, int]] = []
    for row in iter_rows(storage, upload_id):
        value = row.get(group_by)
        name = "" if value is None else str(value)
        if groups and groups[-1][0] == name:
            groups[-1] = (name, groups[-1][1] + 1)
        else:
            groups.append((name, 1))
    return groups


@app.task(bind=True, base=PdfgenTask, name=PLAN_REPORT.name)
def plan_report_task(self: PdfgenTask, **payload: Any) -> None:
    """Lay the report out and publish one render task per chunk of pages."""
    request = PlanReport.model_validate(payload)
    self.run_job(request.job_id, lambda job: _plan(self, request, job), settle=False)


def _plan(task: PdfgenTask, request: PlanReport, job: JobContext) -> None:
    res, storage = resources(settings), _storage()
    with res.pool.connection() as conn:
        report = reports.load(conn, request.report_id)
        if report is None:
            return
        if report["plan"] is None:
            layout = _layout(report)
            groups = group_sizes(storage, report["upload_id"], report["group_by"])
            plan = plan_report(groups, layout.rows_per_page, settings.pdf_pages_per_chunk)
            reports.store_plan(
                conn, request.report_id, plan.to_dict(), plan.total_pages, len(plan.chunks)
            )
            log.info("planned %d pages in %d chunks", plan.total_pages, len(plan.chunks))
        pending = reports.pending_chunks(conn, request.report_id)
        report = reports.load(conn, request.report_id)
        assert report is not None
    job.progress(report["chunks_done"], report["chunks_total"])
    headers = {"offload_request_id": header(task, "offload_request_id")}
    for chunk_no in pending:
        render_chunk_task.apply_async(
            kwargs={
                "job_id": str(request.job_id),
                "report_id": str(request.report_id),
                "chunk_no": chunk_no,
            },
            headers=headers,
        )
    if not pending:  # every chunk was already rendered (a redelivered plan)
        _publish_merge(request.job_id, request.report_id, headers)


@app.task(bind=True, base=PdfgenTask, name=RENDER_CHUNK.name)
def render_chunk_task(self: PdfgenTask, **payload: Any) -> None:
    """Render one chunk of pages to storage; the last chunk done publishes the merge."""
    request = RenderChunk.model_validate(payload)
    self.run_job(request.job_id, lambda job: _render(self, request, job), settle=False)


def _render(task: PdfgenTask, request: RenderChunk, job: JobContext) -> None:
    res, storage = resources(settings), _storage()
    with res.pool.connection() as conn:
        report = reports.load(conn, request.report_id)
        if report is None or report["plan"] is None:
            return
        if not reports.is_chunk_done(conn, request.report_id, request.chunk_no):
            plan = ReportPlan.from_dict(report["plan"])
            chunk = plan.chunks[request.chunk_no]
            reset_peak()
            started = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="offload-chunk-") as tmp:
                path = Path(tmp) / "chunk.pdf"
                rows: Iterator[dict[str, Any]] = iter_rows(
                    storage, report["upload_id"], chunk.first_row, chunk.row_count
                )
                with path.open("wb") as out:
                    pages = render_pages(
                        out,
                        title=report["title"],
                        layout=_layout(report),
                        plan=plan,
                        chunk=chunk,
                        rows=rows,
                        generated_at=report["created_at"],
                    )
                size = path.stat().st_size
                storage.put_file(reports.chunk_key(request.report_id, request.chunk_no), path)
            elapsed = time.perf_counter() - started
            peak = peak_bytes()
            CHUNK_DURATION.observe(elapsed)
            PAGES_RENDERED.inc(pages)
            TASK_PEAK_RSS.labels("render_chunk").observe(peak)
            done, total = reports.chunk_done(
                conn,
                request.report_id,
                request.chunk_no,
                pages=pages,
                size=size,
                render_s=elapsed,
                peak_rss=peak,
            )
        else:
            done, total = report["chunks_done"], report["chunks_total"]
    job.progress(done, total)
    if done == total:
        _publish_merge(
            request.job_id,
            request.report_id,
            {"offload_request_id": header(task, "offload_request_id")},
        )


def _publish_merge(job_id: UUID, report_id: UUID, headers: dict[str, Any]) -> None:
    merge_report_task.apply_async(
        kwargs={"job_id": str(job_id), "report_id": str(report_id)}, headers=headers
    )


@app.task(bind=True, base=PdfgenTask, name=MERGE_REPORT.name)
def merge_report_task(self: PdfgenTask, **payload: Any) -> Mapping[str, Any] | None:
    """Merge the chunks into one PDF with outline and metadata, store it, expire it later."""
    request = MergeReport.model_validate(payload)
    return self.run_job(request.job_id, lambda job: _merge(request))


def _merge(request: MergeReport) -> dict[str, Any]:
    res, storage = resources(settings), _storage()
    with res.pool.connection() as conn:
        report = reports.load(conn, request.report_id)
        if report is None:
            raise PdfgenError(f"report {request.report_id} is gone")
        if report["status"] == "ready":  # a redelivered merge: the report exists once
            return _result(report)
        if not reports.start_merge(conn, request.report_id):
            raise PdfgenError(f"report {request.report_id} is not ready to merge")
        plan = ReportPlan.from_dict(report["plan"])
        reset_peak()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="offload-merge-") as tmp:
            paths = []
            for chunk_no in range(len(plan.chunks)):
                path = Path(tmp) / f"{chunk_no:06d}.pdf"
                storage.download(reports.chunk_key(request.report_id, chunk_no), path)
                paths.append(path)
            out = Path(tmp) / "report.pdf"
            merged = merge_chunks(
                paths,
                out,
                title=report["title"],
                created_at=report["created_at"],
                outline=plan.outline,
            )
            key = reports.report_key(request.report_id)
            storage.put_file(key, out)
        MERGE_DURATION.observe(time.perf_counter() - started)
        TASK_PEAK_RSS.labels("merge_report").observe(peak_bytes())
        BYTES_STORED.inc(merged.bytes)
        reports.mark_ready(
            conn,
            request.report_id,
            key=key,
            size=merged.bytes,
            pages=merged.pages,
            ttl_s=settings.pdf_report_ttl_s,
        )
        storage.delete_prefix(reports.chunks_prefix(request.report_id))
        report = reports.load(conn, request.report_id)
    assert report is not None
    return _result(report)


def _result(report: Mapping[str, Any]) -> dict[str, Any]:
    return {"report_id": str(report["id"]), "pages": report["pages"], "bytes": report["bytes"]}


@app.task(name=CLEANUP_EXPIRED)
def cleanup_expired_reports() -> dict[str, int]:
    """Delete expired reports' files and expired uploads (periodic, from beat)."""
    res, storage = resources(settings), _storage()
    with res.pool.connection() as conn:
        return {
            "reports": retention.remove_expired_reports(conn, storage),
            "uploads": retention.remove_expired_uploads(conn, storage, settings.upload_ttl_s),
        }
