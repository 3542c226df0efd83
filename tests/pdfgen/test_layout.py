import pytest
from reportlab.lib.pagesizes import A4
from reportlab.pdfbase.pdfmetrics import stringWidth

from services.common.errors import BusinessError
from services.pdfgen.errors import LayoutError
from services.pdfgen.layout import (
    ELLIPSIS,
    FONT,
    MARGIN,
    MIN_COLUMN_WIDTH,
    Column,
    cell_text,
    fit_text,
    layout_for,
)


def columns(count: int, width: float | None = None) -> list[Column]:
    return [Column(f"c{i}", f"Column {i}", width) for i in range(count)]


def test_few_columns_fit_portrait_and_share_the_width() -> None:
    layout = layout_for(columns(4))
    assert layout.orientation == "portrait"
    assert (layout.page_width, layout.page_height) == A4
    assert layout.widths == pytest.approx([(A4[0] - 2 * MARGIN) / 4] * 4)
    assert layout.table_width == pytest.approx(layout.usable_width)


def test_explicit_widths_are_honoured_and_the_rest_share_what_is_left() -> None:
    layout = layout_for([Column("id", "ID", 40), Column("a", "A"), Column("b", "B", 100)])
    assert layout.widths[0] == 40
    assert layout.widths[2] == 100
    assert layout.widths[1] == pytest.approx(layout.usable_width - 140)
    assert layout.column_lefts == pytest.approx(
        (MARGIN, MARGIN + 40, MARGIN + 40 + layout.widths[1])
    )


def test_explicit_widths_only_leave_the_table_narrower_than_the_page() -> None:
    layout = layout_for(columns(2, width=100))
    assert layout.widths == (100, 100)
    assert layout.orientation == "portrait"


def test_wide_tables_turn_landscape() -> None:
    layout = layout_for(columns(8))
    assert layout.orientation == "landscape"
    assert (layout.page_width, layout.page_height) == (A4[1], A4[0])
    assert layout_for(columns(7)).orientation == "portrait"
    assert layout_for(columns(3, width=250)).orientation == "landscape"


def test_rows_per_page_fill_the_body_exactly() -> None:
    for layout in (layout_for(columns(3)), layout_for(columns(10))):
        body = layout.rows_top - layout.footer_top
        assert layout.rows_per_page == int(body // layout.row_height)
        assert layout.rows_per_page * layout.row_height <= body
    assert layout_for(columns(3)).rows_per_page == 57
    assert layout_for(columns(10)).rows_per_page == 37


@pytest.mark.parametrize(
    "cols",
    [
        [],
        columns(50),
        columns(2, width=500),
        [Column("a", "A", MIN_COLUMN_WIDTH - 1)],
        [Column("a", "A"), Column("a", "again")],
        [Column("a", "A", None, "justify")],  # type: ignore[arg-type]
    ],
    ids=["none", "too-many", "too-wide", "too-narrow", "duplicate-key", "bad-align"],
)
def test_columns_that_cannot_fit_are_refused(cols: list[Column]) -> None:
    with pytest.raises(LayoutError) as raised:
        layout_for(cols)
    assert raised.value.code == "layout_invalid"
    assert isinstance(raised.value, BusinessError)  # fails the job at once, no retry


def test_minimum_width_columns_still_fit_landscape() -> None:
    count = int((A4[1] - 2 * MARGIN) // MIN_COLUMN_WIDTH)
    assert layout_for(columns(count)).widths[0] >= MIN_COLUMN_WIDTH
    assert layout_for(columns(40)).orientation == "landscape"  # the most a spec may have


def test_short_text_is_kept_and_long_text_cut_with_an_ellipsis() -> None:
    text, drawn = fit_text("short", 100, FONT, 8)
    assert text == "short"
    assert drawn == pytest.approx(stringWidth("short", FONT, 8))
    long = "The quick brown fox jumps over the lazy dog " * 5
    fitted, drawn = fit_text(long, 100, FONT, 8)
    assert fitted.endswith(ELLIPSIS)
    assert drawn <= 100
    assert drawn == pytest.approx(stringWidth(fitted, FONT, 8))
    letters = "abcdefghij" * 20
    fitted, _ = fit_text(letters, 100, FONT, 8)
    kept = len(fitted) - 1
    assert fitted == letters[:kept] + ELLIPSIS
    # The longest prefix: one more character would not fit.
    assert stringWidth(letters[: kept + 1] + ELLIPSIS, FONT, 8) > 100


@pytest.mark.parametrize("width", [5.0, 12.0, 30.0, 57.5, 200.0])
def test_fitted_text_never_exceeds_its_width(width: float) -> None:
    for text in ["W" * 80, "i" * 300, "mixed WWW iii 123 " * 10, "x"]:
        fitted, drawn = fit_text(text, width, FONT, 8)
        assert drawn <= width
        assert fitted == text or fitted.endswith(ELLIPSIS) or fitted == ""


def test_cell_text_of_json_values() -> None:
    assert cell_text(None) == ""
    assert cell_text(True) == "true"
    assert cell_text(False) == "false"
    assert cell_text(12) == "12"
    assert cell_text(1.5) == "1.5"
    assert cell_text("two\nlines\tand tab") == "two lines and tab"


def test_column_from_spec() -> None:
    assert Column.from_dict({"key": "amount", "label": "Amount", "align": "right"}) == Column(
        "amount", "Amount", None, "right"
    )
    assert Column.from_dict({"key": "id", "width": 40}) == Column("id", "id", 40.0, None)
