"""Data uploads: large NDJSON or CSV files streamed into storage, for reports to read."""

from typing import Any

from fastapi import APIRouter, Request, status

from services.gateway.deps import ApiKey, ClientsDep
from services.gateway.errors import ErrorBody, UploadTooLarge
from services.gateway.line_reader import openapi_body, request_format
from services.gateway.uploads.schemas import UploadReceipt, UploadView

router = APIRouter(prefix="/v1/uploads", tags=["uploads"])

_UPLOAD_BODY = openapi_body(
    '{"region": "north", "amount": 12.5}\n{"region": "south", "amount": 3}\n',
    "region,amount\nnorth,12.5\nsouth,3\n",
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadReceipt,
    responses={
        413: {"model": ErrorBody, "description": "Larger than OFFLOAD_UPLOAD_MAX_BYTES"},
        415: {"model": ErrorBody, "description": "Neither NDJSON nor CSV, or compressed"},
        422: {"model": ErrorBody, "description": "No valid row, or an unusable CSV header"},
    },
    openapi_extra={"requestBody": _UPLOAD_BODY},
)
async def create_upload(request: Request, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """Stream a JSONL or CSV data file into storage; bad lines are reported, good rows kept."""
    fmt = request_format(request.headers)
    limit = clients.uploads.max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(f"uploads are limited to {limit} bytes")
    index, errors = await clients.uploads.receive(request.stream(), fmt)
    return clients.uploads.view(index) | {"errors": errors}


@router.get("/{upload_id}", response_model=UploadView, responses={404: {"model": ErrorBody}})
async def get_upload(upload_id: str, clients: ClientsDep, _: ApiKey) -> dict[str, Any]:
    """A stored upload: rows, size, columns, expiry (404 once expired)."""
    return clients.uploads.view(await clients.uploads.get(upload_id))
