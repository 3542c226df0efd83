"""Page geometry of a report: A4 portrait or landscape, fixed bands, single-line cells.

Every page has the same layout: a header band (title, then the group line), the table header
row, `rows_per_page` rows of `row_height`, and a footer band (generation time, "Page N of M").
Cells never wrap (text is cut with an ellipsis to its column width), so a page always holds
exactly `rows_per_page` rows and pagination is computed without rendering.

Widths: explicit column widths (points) are honoured; the other columns share what is left of
the usable width equally. Portrait is chosen when the explicit widths plus a preferred width
for every other column fit, landscape otherwise; when even the minimum widths do not fit
landscape, `layout_for` raises `LayoutError`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth

from services.pdfgen import fonts
from services.pdfgen.errors import LayoutError

Align = Literal["left", "right", "center"]
ALIGNS: tuple[Align, ...] = ("left", "right", "center")

MARGIN = 36.0
FONT = fonts.REGULAR
BOLD_FONT = fonts.BOLD
FONT_SIZE = 8.0
TITLE_FONT_SIZE = 12.0
GROUP_FONT_SIZE = 9.0
HEADER_HEIGHT = 34.0
HEADER_GAP = 6.0
TABLE_HEADER_HEIGHT = 16.0
ROW_HEIGHT = 12.0
FOOTER_HEIGHT = 20.0
CELL_PADDING = 3.0
# An automatic column gets this much room when deciding portrait or landscape ...
PREFERRED_COLUMN_WIDTH = 72.0
# ... and never less than this (two or three characters and the ellipsis): 40 columns,
# the most a spec may have, still fit landscape.
MIN_COLUMN_WIDTH = 18.0
ELLIPSIS = "\u2026"
MAX_COLUMNS = 100


@dataclass(frozen=True)
class Column:
    """One table column: the row key it shows, its header label, width and alignment.

    `width` None shares the remaining width; `align` None aligns numbers right, the rest left.
    """

    key: str
    label: str
    width: float | None = None
    align: Align | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Column":
        """A column from the report spec's `{"key", "label", "width"?, "align"?}`."""
        return cls(
            key=str(data["key"]),
            label=str(data.get("label", data["key"])),
            width=None if data.get("width") is None else float(data["width"]),
            align=data.get("align"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The report spec's form of the column."""
        return {"key": self.key, "label": self.label, "width": self.width, "align": self.align}


@dataclass(frozen=True)
class Layout:
    """Resolved geometry shared by every page of one report (points, origin bottom-left)."""

    orientation: Literal["portrait", "landscape"]
    page_width: float
    page_height: float
    margin: float
    columns: tuple[Column, ...]
    widths: tuple[float, ...]
    rows_per_page: int
    font: str = FONT
    bold_font: str = BOLD_FONT
    font_size: float = FONT_SIZE
    title_font_size: float = TITLE_FONT_SIZE
    group_font_size: float = GROUP_FONT_SIZE
    header_height: float = HEADER_HEIGHT
    header_gap: float = HEADER_GAP
    table_header_height: float = TABLE_HEADER_HEIGHT
    row_height: float = ROW_HEIGHT
    footer_height: float = FOOTER_HEIGHT
    cell_padding: float = CELL_PADDING

    @property
    def usable_width(self) -> float:
        """Width between the side margins."""
        return self.page_width - 2 * self.margin

    @property
    def table_width(self) -> float:
        """Sum of the resolved column widths (at most the usable width)."""
        return sum(self.widths)

    @property
    def column_lefts(self) -> tuple[float, ...]:
        """x of each column's left edge."""
        lefts = []
        x = self.margin
        for width in self.widths:
            lefts.append(x)
            x += width
        return tuple(lefts)

    @property
    def header_top(self) -> float:
        """y of the top of the header band."""
        return self.page_height - self.margin

    @property
    def title_baseline(self) -> float:
        """Baseline of the report title, first line of the header band."""
        return self.header_top - self.title_font_size

    @property
    def group_baseline(self) -> float:
        """Baseline of the group line, second line of the header band."""
        return self.title_baseline - self.group_font_size - 6

    @property
    def table_top(self) -> float:
        """y of the top of the table header row."""
        return self.header_top - self.header_height - self.header_gap

    @property
    def rows_top(self) -> float:
        """y of the top of the first body row."""
        return self.table_top - self.table_header_height

    @property
    def footer_top(self) -> float:
        """y of the top of the footer band."""
        return self.margin + self.footer_height


def _rows_per_page(page_height: float) -> int:
    body = (
        page_height - 2 * MARGIN - HEADER_HEIGHT - HEADER_GAP - TABLE_HEADER_HEIGHT - FOOTER_HEIGHT
    )
    return int(body // ROW_HEIGHT)


def _check_columns(columns: Sequence[Column]) -> None:
    if not columns:
        raise LayoutError("a report needs at least one column")
    if len(columns) > MAX_COLUMNS:
        raise LayoutError(f"{len(columns)} columns; at most {MAX_COLUMNS} fit a page")
    keys = [column.key for column in columns]
    if len(set(keys)) != len(keys):
        raise LayoutError("column keys must be unique")
    for column in columns:
        if column.align is not None and column.align not in ALIGNS:
            raise LayoutError(f"column {column.key!r}: align must be one of {ALIGNS}")
        if column.width is not None and not column.width >= MIN_COLUMN_WIDTH:
            raise LayoutError(
                f"column {column.key!r}: width {column.width} is below {MIN_COLUMN_WIDTH} pt"
            )


def layout_for(columns: Sequence[Column]) -> Layout:
    """The layout of a table with these columns, or LayoutError when they cannot fit A4."""
    fonts.ensure_registered()  # the layout names the report fonts; text is measured in them
    _check_columns(columns)
    explicit = sum(column.width or 0.0 for column in columns)
    automatic = sum(1 for column in columns if column.width is None)
    portrait_width, portrait_height = A4
    if explicit + automatic * PREFERRED_COLUMN_WIDTH <= portrait_width - 2 * MARGIN:
        orientation: Literal["portrait", "landscape"] = "portrait"
        page_width, page_height = portrait_width, portrait_height
    else:
        orientation = "landscape"
        page_width, page_height = portrait_height, portrait_width
    usable = page_width - 2 * MARGIN
    if explicit + automatic * MIN_COLUMN_WIDTH > usable:
        raise LayoutError(
            f"columns need at least {explicit + automatic * MIN_COLUMN_WIDTH:.0f} pt; "
            f"A4 landscape has {usable:.0f} pt between the margins"
        )
    share = (usable - explicit) / automatic if automatic else 0.0
    widths = tuple(column.width if column.width is not None else share for column in columns)
    return Layout(
        orientation=orientation,
        page_width=page_width,
        page_height=page_height,
        margin=MARGIN,
        columns=tuple(columns),
        widths=widths,
        rows_per_page=_rows_per_page(page_height),
    )


def fit_text(text: str, width: float, font: str, size: float) -> tuple[str, float]:
    """The text cut with an ellipsis to fit `width`, and its drawn width."""
    drawn = stringWidth(text, font, size)
    if drawn <= width:
        return text, drawn
    ellipsis = stringWidth(ELLIPSIS, font, size)
    if ellipsis > width:
        return "", 0.0
    # Longest prefix that fits beside the ellipsis: start from a proportional guess and walk,
    # which takes a few measurements where a bisection of a long text takes seven or more.
    room = width - ellipsis
    low = int(len(text) * room / drawn)
    while low > 0 and stringWidth(text[:low], font, size) > room:
        low -= 1
    while low < len(text) and stringWidth(text[: low + 1], font, size) <= room:
        low += 1
    fitted = text[:low].rstrip() + ELLIPSIS
    return fitted, stringWidth(fitted, font, size)


def cell_text(value: Any) -> str:
    """How a JSON value reads in a cell: null empty, booleans true/false, one line."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    text = value if isinstance(value, str) else str(value)
    if "\n" in text or "\r" in text or "\t" in text:
        text = " ".join(text.split())
    return text


def is_number(value: Any) -> bool:
    """Whether a JSON value is a number (booleans are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)
