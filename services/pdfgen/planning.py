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
- A report may have at most `max_groups` groups and `max_pages` pages: past either, planning
  stops at once with ReportTooLarge, without reading the rest of the groups.
- Stored, a plan is its chunks, each with the groups on its pages (a group over several
  chunks is listed in each); the outline is not stored but derived from the groups. So the
  plan grows with the pages, never the rows, and a render task reads one chunk's entry
  (`ReportPlan.for_chunk`), not the whole plan.
"""

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from services.pdfgen.errors import ReportTooLarge

OUTLINE_ROWS = 1000
BLANK_GROUP = "(blank)"
# A group name is cut to this many characters (the last an ellipsis) in headings and
# bookmarks: the header band shows far fewer, and the plan stays small whatever the data.
GROUP_NAME_CHARS = 200
# Default caps on one report (settings OFFLOAD_PDF_MAX_GROUPS, OFFLOAD_PDF_MAX_PAGES).
MAX_GROUPS = 10_000
MAX_PAGES = 200_000


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
    """The report's pagination: groups and chunks, the outline derived; JSON via to_dict.

    A plan read back for one chunk (`for_chunk`) holds that chunk and the groups on its
    pages only: enough to render it.
    """

    rows_per_page: int
    pages_per_chunk: int
    total_rows: int
    total_pages: int
    groups: list[GroupSpan]
    chunks: list[ChunkPlan]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: the totals and, per chunk, [first row, rows, [[group, first row,
        rows, first page], ...]] for the groups on its pages."""
        return {
            "rows_per_page": self.rows_per_page,
            "pages_per_chunk": self.pages_per_chunk,
            "total_rows": self.total_rows,
            "total_pages": self.total_pages,
            "chunks": [
                [
                    chunk.first_row,
                    chunk.row_count,
                    [[g.name, g.first_row, g.row_count, g.first_page] for g in self._on(chunk)],
                ]
                for chunk in self.chunks
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ReportPlan":
        """The whole plan back from `to_dict`'s form (or the earlier form with groups)."""
        if "groups" in data:  # stored before plans were kept per chunk
            return cls._from_groups(data, [ChunkPlan(**chunk) for chunk in data["chunks"]])
        head = _Head(data)
        groups: list[GroupSpan] = []
        chunks = []
        for chunk_no, entry in enumerate(data["chunks"]):
            chunk, spans = head.chunk(chunk_no, entry)
            chunks.append(chunk)
            groups += spans[1:] if groups and groups[-1] == spans[0] else spans
        return head.plan(groups, chunks)

    @classmethod
    def for_chunk(
        cls, head: Mapping[str, Any], entry: Any, chunk_no: int
    ) -> tuple["ReportPlan", ChunkPlan]:
        """A plan holding only chunk `chunk_no`, and that chunk, from the stored plan's fields
        other than `chunks` (`head`) and the chunk's own entry in `chunks`."""
        if "groups" in head:  # stored before plans were kept per chunk
            chunk = ChunkPlan(**entry)
            return cls._from_groups(head, [chunk]), chunk
        parts = _Head(head)
        chunk, spans = parts.chunk(chunk_no, entry)
        return parts.plan(spans, [chunk]), chunk

    @classmethod
    def _from_groups(cls, data: Mapping[str, Any], chunks: list[ChunkPlan]) -> "ReportPlan":
        return cls(
            rows_per_page=data["rows_per_page"],
            pages_per_chunk=data["pages_per_chunk"],
            total_rows=data["total_rows"],
            total_pages=data["total_pages"],
            groups=[GroupSpan(**group) for group in data["groups"]],
            chunks=chunks,
        )

    @cached_property
    def outline(self) -> list[OutlineEntry]:
        """One bookmark per group when grouped, else one per 1,000 rows."""
        if any(group.name is not None for group in self.groups):
            return [OutlineEntry(g.name or BLANK_GROUP, g.first_page) for g in self.groups]
        return [
            OutlineEntry(
                f"Rows {first + 1:,}\u2013{min(first + OUTLINE_ROWS, self.total_rows):,}",
                first // self.rows_per_page + 1,
            )
            for first in range(0, self.total_rows, OUTLINE_ROWS)
        ]

    @cached_property
    def _group_first_pages(self) -> list[int]:
        return [group.first_page for group in self.groups]

    def _on(self, chunk: ChunkPlan) -> list[GroupSpan]:
        """The groups on the chunk's pages."""
        first = bisect_right(self._group_first_pages, chunk.first_page) - 1
        last = bisect_right(self._group_first_pages, chunk.first_page + chunk.page_count - 1)
        return self.groups[first:last]

    def chunk(self, chunk_no: int) -> ChunkPlan:
        """The chunk with this number (0-based)."""
        return self.chunks[chunk_no]

    def page(self, number: int) -> PageSpec:
        """What page `number` (1-based) shows."""
        if not 1 <= number <= self.total_pages:
            raise ValueError(f"page {number} is outside 1..{self.total_pages}")
        at = bisect_right(self._group_first_pages, number) - 1
        if at < 0 or number >= self.groups[at].first_page + self.groups[at].page_count:
            raise ValueError(f"page {number} is not in this plan's chunks")
        group = self.groups[at]
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


class _Head:
    """The totals of a stored plan, and its chunks' entries read back."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.rows_per_page: int = data["rows_per_page"]
        self.pages_per_chunk: int = data["pages_per_chunk"]
        self.total_pages: int = data["total_pages"]

    def chunk(self, chunk_no: int, entry: Sequence[Any]) -> tuple[ChunkPlan, list[GroupSpan]]:
        first_row, row_count, groups = entry
        first_page = chunk_no * self.pages_per_chunk + 1
        page_count = min(self.pages_per_chunk, self.total_pages - first_page + 1)
        spans = [
            GroupSpan(name, first, count, page, pages_for(count, self.rows_per_page) or 1)
            for name, first, count, page in groups
        ]
        return ChunkPlan(chunk_no, first_page, page_count, first_row, row_count), spans

    def plan(self, groups: list[GroupSpan], chunks: list[ChunkPlan]) -> ReportPlan:
        return ReportPlan(
            rows_per_page=self.rows_per_page,
            pages_per_chunk=self.pages_per_chunk,
            total_rows=self.data["total_rows"],
            total_pages=self.total_pages,
            groups=groups,
            chunks=chunks,
        )


def pages_for(row_count: int, rows_per_page: int) -> int:
    """Pages a group of `row_count` rows occupies (a group always starts a page)."""
    return -(-row_count // rows_per_page)


def group_label(name: str | None) -> str:
    """A group's heading: "(blank)" for None or "", long names cut to GROUP_NAME_CHARS."""
    if not name:
        return BLANK_GROUP
    return name if len(name) <= GROUP_NAME_CHARS else name[: GROUP_NAME_CHARS - 1] + "\u2026"


def _spans(
    groups: Iterable[tuple[str | None, int]],
    rows_per_page: int,
    max_groups: int | None,
    max_pages: int | None,
) -> list[GroupSpan]:
    spans: list[GroupSpan] = []
    row, page = 0, 1
    for name, count in groups:
        if count < 0:
            raise ValueError(f"group {name!r} has a negative row count")
        if count == 0:
            continue
        pages = pages_for(count, rows_per_page)
        spans.append(GroupSpan(name, row, count, page, pages))
        row += count
        page += pages
        if max_groups is not None and len(spans) > max_groups:
            raise ReportTooLarge(
                f"the report has more than {max_groups:,} groups (runs of one group_by value "
                "in input order); sort the rows by it or group by a coarser column"
            )
        if max_pages is not None and page - 1 > max_pages:
            raise ReportTooLarge(
                f"the report would have more than {max_pages:,} pages; split it into "
                "smaller reports"
            )
    if not spans:
        return [GroupSpan(None, 0, 0, 1, 1)]
    if any(span.name is not None for span in spans):  # grouped: every group has a label
        spans = [
            GroupSpan(group_label(s.name), s.first_row, s.row_count, s.first_page, s.page_count)
            for s in spans
        ]
    return spans


def plan_report(
    groups: Iterable[tuple[str | None, int]],
    rows_per_page: int,
    pages_per_chunk: int,
    *,
    max_groups: int | None = MAX_GROUPS,
    max_pages: int | None = MAX_PAGES,
) -> ReportPlan:
    """Plan pages and chunks from (group name or None, row count) in input order.

    ReportTooLarge as soon as the groups seen pass `max_groups` or their pages `max_pages`
    (None: no cap); `groups` is read no further.
    """
    if rows_per_page < 1 or pages_per_chunk < 1:
        raise ValueError("rows_per_page and pages_per_chunk must be at least 1")
    spans = _spans(groups, rows_per_page, max_groups, max_pages)
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
