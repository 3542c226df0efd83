"""The pdfgen contract: a report spec, and the plan → render chunks → merge task chain.

`pdfgen.plan_report` lays the report out and publishes one `pdfgen.render_chunk` per chunk of
pages; the chunk whose completion makes every chunk done publishes `pdfgen.merge_report`
(a counter, not a chord; no task ever waits on another).
"""

from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.contracts import TaskContract, TaskPayload

JOB_KIND = "report"
QUEUE = "pdfgen"
# Rows a spec may carry inline; larger reports upload their data (POST /v1/uploads) first.
INLINE_ROWS_MAX = 10_000
TITLE_MAX_CHARS = 200
COLUMNS_MAX = 40
COLUMN_KEY_MAX_CHARS = 64
COLUMN_LABEL_MAX_CHARS = 200
# A cell is drawn on one line of a column at most 2,000 pt wide: no more than this ever shows.
CELL_MAX_CHARS = 1000

Cell = Annotated[str, Field(max_length=CELL_MAX_CHARS)] | int | float | bool | None
# An inline row: a value per column key (the keys are checked against the columns below).
Row = Annotated[
    dict[Annotated[str, Field(max_length=COLUMN_KEY_MAX_CHARS)], Cell],
    Field(max_length=COLUMNS_MAX),
]
ReportStatus = Literal["queued", "rendering", "merging", "ready", "failed", "cancelled", "expired"]


class ColumnSpec(BaseModel):
    """One table column: the row key it shows, its heading, optional width (pt) and alignment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(min_length=1, max_length=COLUMN_KEY_MAX_CHARS)
    label: str = Field(min_length=1, max_length=COLUMN_LABEL_MAX_CHARS)
    width: float | None = Field(default=None, gt=0, le=2000)
    align: Literal["left", "right", "center"] | None = None


class ReportSpec(BaseModel):
    """A report: title, columns, and rows inline or from an upload, optionally grouped."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=TITLE_MAX_CHARS)
    columns: list[ColumnSpec] = Field(min_length=1, max_length=COLUMNS_MAX)
    rows: list[Row] | None = Field(default=None, min_length=1, max_length=INLINE_ROWS_MAX)
    upload_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")
    group_by: str | None = Field(default=None, max_length=COLUMN_KEY_MAX_CHARS)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        keys = [column.key for column in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError("column keys must be unique")
        if (self.rows is None) == (self.upload_id is None):
            raise ValueError('give exactly one of "rows" (inline) or "upload_id"')
        if self.group_by is not None and self.group_by not in keys:
            raise ValueError(f"group_by names an unknown column key: {self.group_by!r}")
        known = set(keys)
        for number, row in enumerate(self.rows or (), start=1):
            unknown = row.keys() - known
            if unknown:
                raise ValueError(f"row {number} has unknown column keys: {sorted(unknown)}")
        return self


class PlanReport(TaskPayload):
    job_id: UUID
    report_id: UUID


class RenderChunk(TaskPayload):
    job_id: UUID
    report_id: UUID
    chunk_no: int = Field(ge=0)


class MergeReport(TaskPayload):
    job_id: UUID
    report_id: UUID


PLAN_REPORT = TaskContract(name="pdfgen.plan_report", queue=QUEUE, payload=PlanReport)
RENDER_CHUNK = TaskContract(name="pdfgen.render_chunk", queue=QUEUE, payload=RenderChunk)
MERGE_REPORT = TaskContract(name="pdfgen.merge_report", queue=QUEUE, payload=MergeReport)
CLEANUP_EXPIRED = "pdfgen.cleanup_expired_reports"
