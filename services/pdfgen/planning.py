"""Pagination and chunking of a report, computed from row counts alone.

- Every page holds `rows_per_page` rows except the last page of each group.
- Each group starts on a new page; its heading is drawn in the header band (first page: the
  group name, later pages: "<group> (continued)"), so it takes no row slot.
- A report with no rows has one page that says "No rows" (upstream need not refuse it).
- Groups with no rows are dropped; in a grouped report a group named None or "" reads
  "(blank)".
- Chunks cut the pages into runs of at most `pages_per_chunk`, on page boundaries; a chunk's
  rows are the global rows on its pages, so a chunk can be re-rendered alone.
- The outline has one entry per group when grouped, else one per 1,000 rows.
"""

from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any

OUTLINE_ROWS = 1000
BLANK_GROUP = "(blank)"


@dataclass(frozen=True)
class GroupSpan:
    """A run of rows sharing a group, and the pages it occupies."""

    name: str | None
    first_row: int
    row_count: int
    first_page: int
    page_count: int


@dataclass(frozen=True)
class ChunkPlan:
    """Pages one task renders and the global rows on them (pages 1-based, rows 0-based)."""

    chunk_no: int
    first_page: int
    page_count: int
    first_row: int
    row_count: int


@dataclass(frozen=True)
class OutlineEntry:
    """A bookmark: its title and the 1-based page it opens."""

    title: str
    page: int


@dataclass(frozen=True)
class PageSpec:
    """What one page shows: its group (None when not grouped) and its global rows."""

    number: int
    group: str | None
    continued: bool
    first_row: int
    row_count: int


@dataclass(frozen=True)
class ReportPlan:
    """The whole report's pagination: groups, chunks and outline; JSON via to_dict/from_dict."""

    rows_per_page: int
    pages_per_chunk: int
    total_rows: int
    total_pages: int
    groups: list[GroupSpan]
    chunks: list[ChunkPlan]
    outline: list[OutlineEntry]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReportPlan":
        """The plan back from `to_dict`'s form."""
        return cls(
            rows_per_page=data["rows_per_page"],
            pages_per_chunk=data["pages_per_chunk"],
            total_rows=data["total_rows"],
            total_pages=data["total_pages"],
            groups=[GroupSpan(**group) for group in data["groups"]],
            chunks=[ChunkPlan(**chunk) for chunk in data["chunks"]],
            outline=[OutlineEntry(**entry) for entry in data["outline"]],
        )

    @cached_property
    def _group_first_pages(self) -> list[int]:
        return [group.first_page for group in self.groups]

    def chunk(self, chunk_no: int) -> ChunkPlan:
        """The chunk with this number (0-based)."""
        return self.chunks[chunk_no]

    def page(self, number: int) -> PageSpec:
        """What page `number` (1-based) shows."""
        if not 1 <= number <= self.total_pages:
            raise ValueError(f"page {number} is outside 1..{self.total_pages}")
        group = self.groups[bisect_right(self._group_first_pages, number) - 1]
        offset = (number - group.first_page) * self.rows_per_page
        return PageSpec(
            number=number,
            group=group.name,
            continued=number > group.first_page,
            first_row=group.first_row + offset,
            row_count=min(self.rows_per_page, group.row_count - offset),
        )

    def pages(self, chunk: ChunkPlan) -> Iterator[PageSpec]:
        """The pages of a chunk, in order."""
        for number in range(chunk.first_page, chunk.first_page + chunk.page_count):
            yield self.page(number)


def pages_for(row_count: int, rows_per_page: int) -> int:
    """Pages a group of `row_count` rows occupies (a group always starts a page)."""
    return -(-row_count // rows_per_page)


def _spans(groups: Sequence[tuple[str | None, int]], rows_per_page: int) -> list[GroupSpan]:
    grouped = any(name is not None for name, _ in groups)
    spans: list[GroupSpan] = []
    row, page = 0, 1
    for name, count in groups:
        if count < 0:
            raise ValueError(f"group {name!r} has a negative row count")
        if count == 0:
            continue
        label = (name or BLANK_GROUP) if grouped else None
        pages = pages_for(count, rows_per_page)
        spans.append(GroupSpan(label, row, count, page, pages))
        row += count
        page += pages
    if not spans:
        spans.append(GroupSpan(None, 0, 0, 1, 1))
    return spans


def _outline(spans: list[GroupSpan], total_rows: int, rows_per_page: int) -> list[OutlineEntry]:
    if any(span.name is not None for span in spans):
        return [OutlineEntry(span.name or BLANK_GROUP, span.first_page) for span in spans]
    return [
        OutlineEntry(
            f"Rows {first + 1:,}\u2013{min(first + OUTLINE_ROWS, total_rows):,}",
            first // rows_per_page + 1,
        )
        for first in range(0, total_rows, OUTLINE_ROWS)
    ]


def plan_report(
    groups: Sequence[tuple[str | None, int]], rows_per_page: int, pages_per_chunk: int
) -> ReportPlan:
    """Plan pages, chunks and outline from (group name or None, row count) in input order."""
    if rows_per_page < 1 or pages_per_chunk < 1:
        raise ValueError("rows_per_page and pages_per_chunk must be at least 1")
    spans = _spans(groups, rows_per_page)
    last = spans[-1]
    total_rows = last.first_row + last.row_count
    total_pages = last.first_page + last.page_count - 1
    plan = ReportPlan(
        rows_per_page=rows_per_page,
        pages_per_chunk=pages_per_chunk,
        total_rows=total_rows,
        total_pages=total_pages,
        groups=spans,
        chunks=[],
        outline=_outline(spans, total_rows, rows_per_page),
    )
    for chunk_no, first_page in enumerate(range(1, total_pages + 1, pages_per_chunk)):
        page_count = min(pages_per_chunk, total_pages - first_page + 1)
        first = plan.page(first_page)
        final = plan.page(first_page + page_count - 1)
        plan.chunks.append(
            ChunkPlan(
                chunk_no=chunk_no,
                first_page=first_page,
                page_count=page_count,
                first_row=first.first_row,
                row_count=final.first_row + final.row_count - first.first_row,
            )
        )
    return plan
