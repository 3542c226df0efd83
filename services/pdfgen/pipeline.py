"""A report's steps through the database and storage: plan, render each chunk, merge.

Each step decides what comes next and hands it to `publish` as a contract payload (a render
per pending chunk, the merge once the last chunk is done); the caller sends it. A pooled
connection is held only around the report-table statements, never while rows are read,
pages render, files move to or from storage, or chunks merge.
"""

import logging
import tempfile
import time
from collections.abc import Callable, Generator, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from psycopg_pool import ConnectionPool

from services.common.contracts.reports import MergeReport, PlanReport, RenderChunk
from services.common.rowfiles import iter_rows, read_index
from services.common.storage import Storage
from services.common.store import reports
from services.common.worker.jobtask import JobContext
from services.pdfgen.errors import ReportUnusable
from services.pdfgen.layout import Column, Layout, layout_for
from services.pdfgen.memory import peak_bytes, reset_peak
from services.pdfgen.merge import MergeResult, merge_chunks
from services.pdfgen.metrics import (
    BYTES_STORED,
    CHUNK_DURATION,
    MERGE_DURATION,
    PAGES_RENDERED,
    TASK_PEAK_RSS,
)
from services.pdfgen.planning import MAX_GROUPS, MAX_PAGES, ReportPlan, plan_report
from services.pdfgen.render import render_chunk as render_pages

log = logging.getLogger(__name__)

Publish = Callable[[RenderChunk | MergeReport], None]


@dataclass(frozen=True)
class RenderedChunk:
    """A chunk stored: its pages, bytes, wall time to render and store, peak memory."""

    pages: int
    size: int
    render_s: float
    peak_rss: int


def _layout(report: Mapping[str, Any]) -> Layout:
    return layout_for([Column.from_dict(column) for column in report["columns"]])


def group_sizes(
    storage: Storage, upload_id: str, group_by: str | None
) -> Generator[tuple[str | None, int], None, None]:
    """(group, row count) in input order, read as it goes: consecutive rows with one value
    form a group."""
    if group_by is None:
        yield None, read_index(storage, upload_id).rows
        return
    name, count = "", 0
    with closing(iter_rows(storage, upload_id)) as rows:
        for row in rows:
            value = row.get(group_by)
            value = "" if value is None else str(value)
            if count and value != name:
                yield name, count
                count = 0
            name, count = value, count + 1
    if count:
        yield name, count


def plan(
    request: PlanReport,
    job: JobContext,
    *,
    pool: ConnectionPool,
    storage: Storage,
    pages_per_chunk: int,
    publish: Publish,
    max_groups: int = MAX_GROUPS,
    max_pages: int = MAX_PAGES,
) -> None:
    """Plan the report once; publish a render per pending chunk, or the merge if none is.

    ReportTooLarge (the job fails, nothing is stored) as soon as the rows read make more
    than `max_groups` groups or `max_pages` pages.
    """
    with pool.connection() as conn:
        report = reports.load(conn, request.report_id)
    if report is None:
        return
    new_plan = None
    if report["plan"] is None:
        layout = _layout(report)
        with closing(group_sizes(storage, report["upload_id"], report["group_by"])) as groups:
            new_plan = plan_report(
                groups,
                layout.rows_per_page,
                pages_per_chunk,
                max_groups=max_groups,
                max_pages=max_pages,
            )
    with pool.connection() as conn:
        if new_plan is not None:
            reports.store_plan(
                conn,
                request.report_id,
                new_plan.to_dict(),
                new_plan.total_pages,
                len(new_plan.chunks),
            )
            log.info("planned %d pages in %d chunks", new_plan.total_pages, len(new_plan.chunks))
        pending = reports.pending_chunks(conn, request.report_id)
        report = reports.load(conn, request.report_id)
    assert report is not None
    job.progress(report["chunks_done"], report["chunks_total"])
    for chunk_no in pending:
        publish(RenderChunk(job_id=request.job_id, report_id=request.report_id, chunk_no=chunk_no))
    if not pending:  # every chunk was already rendered (a redelivered plan)
        publish(MergeReport(job_id=request.job_id, report_id=request.report_id))


def render(
    request: RenderChunk,
    job: JobContext,
    *,
    pool: ConnectionPool,
    storage: Storage,
    publish: Publish,
) -> None:
    """Render and store one chunk unless it is done; the last chunk done publishes the merge."""
    with pool.connection() as conn:
        report = reports.load_chunk(conn, request.report_id, request.chunk_no)
        if report is None or report["plan"] is None:
            return
        already_done = reports.is_chunk_done(conn, request.report_id, request.chunk_no)
    if already_done:
        done, total = report["chunks_done"], report["chunks_total"]
    else:
        rendered = render_to_storage(storage, request.report_id, report, request.chunk_no)
        with pool.connection() as conn:
            done, total = reports.chunk_done(
                conn,
                request.report_id,
                request.chunk_no,
                pages=rendered.pages,
                size=rendered.size,
                render_s=rendered.render_s,
                peak_rss=rendered.peak_rss,
            )
    job.progress(done, total)
    if done == total:
        publish(MergeReport(job_id=request.job_id, report_id=request.report_id))


def render_to_storage(
    storage: Storage, report_id: UUID, report: Mapping[str, Any], chunk_no: int
) -> RenderedChunk:
    """Render chunk `chunk_no` of a planned report (as `reports.load_chunk` reads it) from its
    rows and store the file."""
    report_plan, chunk = ReportPlan.for_chunk(report["plan"], report["chunk"], chunk_no)
    reset_peak()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="offload-chunk-") as tmp:
        path = Path(tmp) / "chunk.pdf"
        rows = iter_rows(storage, report["upload_id"], chunk.first_row, chunk.row_count)
        with path.open("wb") as out:
            pages = render_pages(
                out,
                title=report["title"],
                layout=_layout(report),
                plan=report_plan,
                chunk=chunk,
                rows=rows,
                generated_at=report["created_at"],
            )
        size = path.stat().st_size
        storage.put_file(reports.chunk_key(report_id, chunk_no), path)
    elapsed = time.perf_counter() - started
    peak = peak_bytes()
    CHUNK_DURATION.observe(elapsed)
    PAGES_RENDERED.inc(pages)
    TASK_PEAK_RSS.labels("render_chunk").observe(peak)
    return RenderedChunk(pages=pages, size=size, render_s=elapsed, peak_rss=peak)


def merge(
    request: MergeReport, *, pool: ConnectionPool, storage: Storage, ttl_s: int
) -> dict[str, Any]:
    """Merge the stored chunks into the report, mark it ready for `ttl_s`, drop the chunks."""
    with pool.connection() as conn:
        report = reports.load(conn, request.report_id)
        if report is None:
            raise ReportUnusable(f"report {request.report_id} is gone")
        if report["status"] == "ready":  # a redelivered merge: the report exists once
            return _result(report)
        if not reports.start_merge(conn, request.report_id):
            raise ReportUnusable(f"report {request.report_id} is not ready to merge")
    key = reports.report_key(request.report_id)
    merged = merge_to_storage(storage, request.report_id, report, key)
    with pool.connection() as conn:
        reports.mark_ready(
            conn, request.report_id, key=key, size=merged.bytes, pages=merged.pages, ttl_s=ttl_s
        )
        report = reports.load(conn, request.report_id)
    storage.delete_prefix(reports.chunks_prefix(request.report_id))
    assert report is not None
    return _result(report)


def merge_to_storage(
    storage: Storage, report_id: UUID, report: Mapping[str, Any], key: str
) -> MergeResult:
    """Download a report's chunks, merge them with its outline and metadata, store at `key`."""
    report_plan = ReportPlan.from_dict(report["plan"])
    reset_peak()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="offload-merge-") as tmp:
        paths = []
        for chunk_no in range(len(report_plan.chunks)):
            path = Path(tmp) / f"{chunk_no:06d}.pdf"
            storage.download(reports.chunk_key(report_id, chunk_no), path)
            paths.append(path)
        out = Path(tmp) / "report.pdf"
        merged = merge_chunks(
            paths,
            out,
            title=report["title"],
            created_at=report["created_at"],
            outline=report_plan.outline,
        )
        storage.put_file(key, out)
    MERGE_DURATION.observe(time.perf_counter() - started)
    TASK_PEAK_RSS.labels("merge_report").observe(peak_bytes())
    BYTES_STORED.inc(merged.bytes)
    return merged


def _result(report: Mapping[str, Any]) -> dict[str, Any]:
    return {"report_id": str(report["id"]), "pages": report["pages"], "bytes": report["bytes"]}
