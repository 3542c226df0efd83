"""PDF reports: submit a spec (inline rows or an upload), follow it, download the file."""

import asyncio
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, status
from fastapi.responses import RedirectResponse, StreamingResponse

from services.common.contracts.reports import ReportSpec
from services.common.logs import request_id_var
from services.common.rowfiles import TooManyColumns
from services.gateway.deps import ApiKey, ClientsDep, IdempotencyKeyHeader, idempotency_for
from services.gateway.errors import ErrorBody, InvalidReportSpec, UploadNotFound
from services.gateway.reports.schemas import ReportAccepted, ReportView
from services.gateway.reports.service import report_view
from services.gateway.uploads.service import UploadStore, store_rows

router = APIRouter(prefix="/v1/reports", tags=["reports"])
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
# Presigned S3 links handed out by /file live this long.
LINK_TTL_S = 300
READ_CHUNK = 1024 * 1024


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReportAccepted,
    responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}},
)
async def create_report(
    spec: Annotated[ReportSpec, Body()],
    clients: ClientsDep,
    api_key: ApiKey,
    idempotency_key: IdempotencyKeyHeader = None,
) -> dict[str, str]:
    """Queue a PDF report; rows inline (up to 10,000) or from POST /v1/uploads."""
    idem = idempotency_for(clients, api_key, idempotency_key, spec.model_dump(mode="json"))
    if spec.upload_id is not None:
        await _check_upload(clients.uploads, spec)
        upload_id, owns_upload = spec.upload_id, False
    else:
        assert spec.rows is not None
        try:
            upload_id = await store_rows(clients.storage, spec.rows, clients.uploads.max_columns)
        except TooManyColumns as exc:
            raise InvalidReportSpec(f"rows: {exc}") from None
        owns_upload = True
    job_id, report_id = await clients.reports.submit(
        spec,
        upload_id,
        owns_upload,
        clients.admission,
        request_id=request_id_var.get(),
        idempotency=idem,
    )
    return {"job_id": str(job_id), "report_id": str(report_id)}


async def _check_upload(uploads: UploadStore, spec: ReportSpec) -> None:
    assert spec.upload_id is not None
    try:
        index = await uploads.get(spec.upload_id)
    except UploadNotFound as exc:
        raise InvalidReportSpec(f"{exc.message}: {spec.upload_id}") from None
    if len(index.columns) > uploads.max_columns:  # an upload stored before the cap
        raise InvalidReportSpec(
            f"the upload has more than {uploads.max_columns} columns; upload narrower data"
        )
    unknown = [c.key for c in spec.columns if c.key not in index.columns]
    if unknown:
        raise InvalidReportSpec(f"unknown column keys (not in the upload): {unknown}")


@router.get("/{report_id}", response_model=ReportView, responses=NOT_FOUND)
async def get_report(report_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Status, pages, chunk progress, size and download link (while not expired)."""
    return report_view(await clients.reports.get(report_id))


@router.get(
    "/{report_id}/file",
    response_class=StreamingResponse,
    responses={**NOT_FOUND, 200: {"content": {"application/pdf": {}}}, 307: {}},
)
async def download_report(report_id: str, clients: ClientsDep, _: ApiKey) -> Any:
    """The PDF: streamed from local storage, or a redirect to a short-lived S3 link."""
    key, size = await clients.reports.file_key(report_id)
    link = await asyncio.to_thread(clients.storage.presigned_url, key, LINK_TTL_S)
    if link is not None:
        return RedirectResponse(link, status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    def chunks() -> Iterator[bytes]:
        with clients.storage.open_reader(key) as reader:
            while block := reader.read(READ_CHUNK):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/pdf",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="report-{report_id}.pdf"',
        },
    )
