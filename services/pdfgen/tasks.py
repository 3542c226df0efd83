"""Pdfgen tasks: thin wrappers that validate the payload and call the report pipeline."""

from collections.abc import Mapping
from typing import Any

from psycopg_pool import ConnectionPool

from services.common.contracts.reports import (
    CLEANUP_EXPIRED,
    MERGE_REPORT,
    PLAN_REPORT,
    RENDER_CHUNK,
    MergeReport,
    PlanReport,
    RenderChunk,
)
from services.common.storage import Storage, storage_from_settings
from services.common.worker.jobtask import JobTask
from services.common.worker.resources import resources
from services.pdfgen import pipeline, retention
from services.pdfgen.worker import app, settings


class PdfgenTask(JobTask):
    abstract = True


def _pool() -> ConnectionPool:
    return resources(settings).pool


def _storage() -> Storage:
    return storage_from_settings(settings)


def _publisher(task: PdfgenTask) -> pipeline.Publish:
    """Send what the pipeline decided comes next, with the request id of `task`."""

    def publish(message: RenderChunk | MergeReport) -> None:
        target = render_chunk_task if isinstance(message, RenderChunk) else merge_report_task
        task.publish(target, message)

    return publish


@app.task(bind=True, base=PdfgenTask, name=PLAN_REPORT.name)
def plan_report_task(self: PdfgenTask, **payload: Any) -> None:
    """Lay the report out and publish one render task per chunk of pages."""
    request = PlanReport.model_validate(payload)
    self.run_job(
        request.job_id,
        lambda job: pipeline.plan(
            request,
            job,
            pool=_pool(),
            storage=_storage(),
            pages_per_chunk=settings.pdf_pages_per_chunk,
            max_groups=settings.pdf_max_groups,
            max_pages=settings.pdf_max_pages,
            publish=_publisher(self),
        ),
        settle=False,
    )


@app.task(bind=True, base=PdfgenTask, name=RENDER_CHUNK.name)
def render_chunk_task(self: PdfgenTask, **payload: Any) -> None:
    """Render one chunk of pages to storage; the last chunk done publishes the merge."""
    request = RenderChunk.model_validate(payload)
    self.run_job(
        request.job_id,
        lambda job: pipeline.render(
            request, job, pool=_pool(), storage=_storage(), publish=_publisher(self)
        ),
        settle=False,
    )


@app.task(bind=True, base=PdfgenTask, name=MERGE_REPORT.name)
def merge_report_task(self: PdfgenTask, **payload: Any) -> Mapping[str, Any] | None:
    """Merge the chunks into one PDF with outline and metadata, store it, expire it later."""
    request = MergeReport.model_validate(payload)
    return self.run_job(
        request.job_id,
        lambda job: pipeline.merge(
            request, pool=_pool(), storage=_storage(), ttl_s=settings.pdf_report_ttl_s
        ),
    )


@app.task(name=CLEANUP_EXPIRED)
def cleanup_expired_reports() -> dict[str, int]:
    """Delete expired reports' files and expired uploads (periodic, from beat)."""
    return retention.cleanup(_pool(), _storage(), settings.upload_ttl_s)
