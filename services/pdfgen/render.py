"""Render one chunk of a report's pages with reportlab's canvas, row by row.

Memory stays flat in the report size: rows are pulled from an iterable one page at a time and
the canvas holds only this chunk's pages. Page numbers and group headings come from the plan,
so a chunk renders the same bytes whenever and wherever it runs (invariant=1).
"""

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any, BinaryIO

from reportlab import rl_config
from reportlab.pdfgen.canvas import Canvas

from services.pdfgen.errors import ChunkRowsMismatch
from services.pdfgen.fonts import TextShower
from services.pdfgen.layout import Align, Layout, cell_text, fit_text, is_number
from services.pdfgen.planning import ChunkPlan, PageSpec, ReportPlan

NO_ROWS = "No rows"
HEADER_FILL = 0.85
SHADE_FILL = 0.94
RULE_GRAY = 0.5


@dataclass(frozen=True)
class _Cell:
    key: str
    left: float
    width: float
    text_width: float
    align: Align | None


def footer_text(generated_at: datetime) -> str:
    """The footer's generation stamp, in UTC (a naive datetime is taken as UTC)."""
    if generated_at.tzinfo is not None:
        generated_at = generated_at.astimezone(UTC)
    return f"Generated {generated_at:%Y-%m-%d %H:%M:%S} UTC"


def page_label(number: int, total: int) -> str:
    """The footer's page number, e.g. "Page 7,412 of 10,000"."""
    return f"Page {number:,} of {total:,}"


def group_label(page: PageSpec) -> str:
    """The header band's group line: the name, "(continued)" after its first page."""
    if page.group is None:
        return ""
    return f"{page.group} (continued)" if page.continued else page.group


class _PagePainter:
    """Draws the fixed parts of every page and the rows of one page."""

    def __init__(self, canvas: Canvas, layout: Layout, title: str, generated: str) -> None:
        self.canvas = canvas
        self.layout = layout
        self.title, _ = fit_text(
            title, layout.usable_width, layout.bold_font, layout.title_font_size
        )
        self.generated = generated
        padding = layout.cell_padding
        self.cells = [
            _Cell(column.key, left, width, width - 2 * padding, column.align)
            for column, left, width in zip(
                layout.columns, layout.column_lefts, layout.widths, strict=True
            )
        ]
        self.labels = [
            (cell, *fit_text(column.label, cell.text_width, layout.bold_font, layout.font_size))
            for cell, column in zip(self.cells, layout.columns, strict=True)
        ]
        self.text = TextShower(canvas, layout.font, layout.font_size)

    def _x(self, cell: _Cell, align: Align, drawn: float) -> float:
        padding = self.layout.cell_padding
        if align == "right":
            return cell.left + cell.width - padding - drawn
        if align == "center":
            return cell.left + (cell.width - drawn) / 2
        return cell.left + padding

    def frame(self, page: PageSpec, total_pages: int) -> None:
        """Header band, table header row and footer: the same geometry on every page."""
        c, layout = self.canvas, self.layout
        left, right = layout.margin, layout.page_width - layout.margin
        c.setFillGray(0)
        c.setFont(layout.bold_font, layout.title_font_size)
        c.drawString(left, layout.title_baseline, self.title)
        c.setFont(layout.bold_font, layout.group_font_size)
        group = group_label(page)
        if group:
            group, _ = fit_text(
                group, layout.usable_width, layout.bold_font, layout.group_font_size
            )
            c.drawString(left, layout.group_baseline, group)
        c.setStrokeGray(RULE_GRAY)
        c.setLineWidth(0.5)
        rule = layout.header_top - layout.header_height
        c.line(left, rule, right, rule)
        c.line(left, layout.footer_top, right, layout.footer_top)
        c.setFillGray(HEADER_FILL)
        c.rect(
            left,
            layout.rows_top,
            layout.table_width,
            layout.table_header_height,
            stroke=0,
            fill=1,
        )
        c.setFillGray(0)
        c.setFont(layout.bold_font, layout.font_size)
        baseline = layout.rows_top + 5
        for cell, text, drawn in self.labels:
            c.drawString(self._x(cell, cell.align or "left", drawn), baseline, text)
        c.setFont(layout.font, layout.font_size)
        footer = layout.margin + 6
        c.drawString(left, footer, self.generated)
        c.drawRightString(right, footer, page_label(page.number, total_pages))

    def rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """The body rows, alternate ones shaded, cells cut to their column."""
        c, layout = self.canvas, self.layout
        height = layout.row_height
        top = layout.rows_top
        c.setFillGray(SHADE_FILL)
        for index in range(1, len(rows), 2):
            c.rect(
                layout.margin,
                top - (index + 1) * height,
                layout.table_width,
                height,
                stroke=0,
                fill=1,
            )
        c.setFillGray(0)
        font, size, text = layout.font, layout.font_size, self.text
        # The cells go in as one literal text block: reportlab's textOut measures and encodes
        # every string again, which made rendering ~40% slower.
        ops = [text.begin()]
        if not rows:
            ops += text.show(layout.margin + layout.cell_padding, top - height + 3.5, NO_ROWS)
        for index, row in enumerate(rows):
            baseline = top - (index + 1) * height + 3.5
            for cell in self.cells:
                value = row.get(cell.key)
                if value is None:
                    continue
                shown, drawn = fit_text(cell_text(value), cell.text_width, font, size)
                if not shown:
                    continue
                align = cell.align or ("right" if is_number(value) else "left")
                ops += text.show(self._x(cell, align, drawn), baseline, shown)
        ops.append("ET")
        c.addLiteral("\n".join(ops))


def _take(rows: Iterator[Mapping[str, Any]], page: PageSpec) -> list[Mapping[str, Any]]:
    batch = list(islice(rows, page.row_count))
    if len(batch) != page.row_count:
        raise ChunkRowsMismatch(
            f"page {page.number} needs {page.row_count} rows, the input had {len(batch)}"
        )
    return batch


def render_chunk(
    out: BinaryIO,
    *,
    title: str,
    layout: Layout,
    plan: ReportPlan,
    chunk: ChunkPlan,
    rows: Iterable[Mapping[str, Any]],
    generated_at: datetime,
) -> int:
    """Write the chunk's pages as one PDF to `out`; returns the pages rendered."""
    if plan.rows_per_page > layout.rows_per_page:
        raise ValueError(
            f"the plan puts {plan.rows_per_page} rows on a page of {layout.rows_per_page}"
        )
    with _binary_streams():
        return _render(out, title, layout, plan, chunk, rows, generated_at)


@contextmanager
def _binary_streams() -> Iterator[None]:
    # reportlab wraps compressed streams in ASCII85 by default (+25% bytes, slower to merge);
    # the switch is process-global, so it is set only while this chunk renders.
    saved = rl_config.useA85
    rl_config.useA85 = 0
    try:
        yield
    finally:
        rl_config.useA85 = saved


def _render(
    out: BinaryIO,
    title: str,
    layout: Layout,
    plan: ReportPlan,
    chunk: ChunkPlan,
    rows: Iterable[Mapping[str, Any]],
    generated_at: datetime,
) -> int:
    canvas = Canvas(
        out,
        pagesize=(layout.page_width, layout.page_height),
        pageCompression=1,
        invariant=1,
        # Otherwise every chunk also references Helvetica, which nothing on the page uses.
        initialFontName=layout.font,
        initialFontSize=layout.font_size,
    )
    canvas.setTitle(title)
    painter = _PagePainter(canvas, layout, title, footer_text(generated_at))
    source = iter(rows)
    rendered = 0
    for page in plan.pages(chunk):
        painter.frame(page, plan.total_pages)
        painter.rows(_take(source, page))
        canvas.showPage()
        rendered += 1
    if next(source, None) is not None:
        raise ChunkRowsMismatch(f"chunk {chunk.chunk_no} got more than {chunk.row_count} rows")
    if rendered != chunk.page_count:
        raise ChunkRowsMismatch(f"chunk {chunk.chunk_no}: {rendered} of {chunk.page_count} pages")
    canvas.save()
    return rendered
