"""Data upload bodies: what a finished upload and its index look like to clients."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from services.gateway.line_reader import MAX_ERRORS, LineError


class UploadView(BaseModel):
    """A stored upload: its rows are ready for reports."""

    upload_id: str
    format: Literal["ndjson", "csv"]
    rows: int = Field(description="Good rows stored, in upload order")
    bytes: int = Field(description="Size of the uploaded file")
    stored_bytes: int = Field(description="Size of the rows as stored (JSONL)")
    rejected: int = Field(description="Lines that were not valid rows")
    columns: list[str] = Field(description="Keys seen in the rows, in first-seen order")
    created_at: datetime
    expires_at: datetime = Field(
        description="After this the upload is gone (OFFLOAD_UPLOAD_TTL_S after created_at)"
    )


class UploadReceipt(UploadView):
    """A finished upload, with the first 1,000 bad lines (`rejected` counts them all)."""

    errors: list[LineError] = Field(max_length=MAX_ERRORS)
