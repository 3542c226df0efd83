"""Render chunks and merge them; read the report back with pypdf."""

import io
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from pypdf.generic import Destination

from services.pdfgen.errors import ChunkRowsMismatch, MergeError
from services.pdfgen.layout import Column, Layout, layout_for
from services.pdfgen.merge import PRODUCER, MergeResult, merge_chunks
from services.pdfgen.planning import ReportPlan, plan_report
from services.pdfgen.render import render_chunk

TITLE = "Quarterly ledger \u2014 all accounts"
GENERATED = datetime(2025, 3, 14, 15, 9, 26, tzinfo=UTC)
COLUMNS = [
    Column("id", "ID", 40),
    Column("name", "Customer"),
    Column("region", "Region"),
    Column("amount", "Amount"),
    Column("active", "Active", 40, "center"),
    Column("note", "Note"),
]
LAYOUT = layout_for(COLUMNS)
REGIONS = [("North", 130), ("South", 20), ("West", 75)]


def make_rows(count: int, regions: Sequence[tuple[str, int]] = ()) -> list[dict[str, Any]]:
    names = [name for name, size in regions for _ in range(size)] or ["-"] * count
    return [
        {
            "id": i + 1,
            "name": f"Customer {i + 1:05d}",
            "region": names[i],
            "amount": round(i * 1.25, 2),
            "active": i % 3 == 0,
            "note": None if i % 5 == 0 else "a note long enough to be cut at the column edge " * 2,
        }
        for i in range(count)
    ]


def render_all(
    tmp_path: Path,
    plan: ReportPlan,
    rows: list[dict[str, Any]],
    layout: Layout = LAYOUT,
    title: str = TITLE,
) -> list[Path]:
    paths = []
    for chunk in plan.chunks:
        path = tmp_path / f"chunk-{chunk.chunk_no:04d}.pdf"
        with path.open("wb") as out:
            pages = render_chunk(
                out,
                title=title,
                layout=layout,
                plan=plan,
                chunk=chunk,
                rows=iter(rows[chunk.first_row : chunk.first_row + chunk.row_count]),
                generated_at=GENERATED,
            )
        assert pages == chunk.page_count
        assert len(PdfReader(path).pages) == chunk.page_count
        paths.append(path)
    return paths


def build(
    tmp_path: Path, plan: ReportPlan, rows: list[dict[str, Any]]
) -> tuple[MergeResult, PdfReader]:
    paths = render_all(tmp_path, plan, rows)
    out = tmp_path / "report.pdf"
    result = merge_chunks(
        paths,
        out,
        title=TITLE,
        created_at=GENERATED,
        outline=plan.outline,
        expected_pages=plan.total_pages,
    )
    return result, PdfReader(out, strict=True)


def page_text(reader: PdfReader, number: int) -> list[str]:
    return reader.pages[number - 1].extract_text().splitlines()


def bookmarks(reader: PdfReader) -> list[tuple[str, int]]:
    """The top-level outline: (title, 1-based target page)."""
    marks = []
    for item in reader.outline:
        assert isinstance(item, Destination)
        page = reader.get_destination_page_number(item)
        assert page is not None
        marks.append((str(item.title), page + 1))
    return marks


def sampled_pages(plan: ReportPlan) -> Iterator[int]:
    yield 1
    for before, after in zip(plan.chunks, plan.chunks[1:], strict=False):
        yield before.first_page + before.page_count - 1
        yield after.first_page
    yield plan.total_pages


@pytest.fixture(scope="module")
def ungrouped(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReportPlan, PdfReader]:
    # 2,500 rows are 44 pages; 10-page chunks give four chunk boundaries to check.
    plan = plan_report([(None, 2500)], LAYOUT.rows_per_page, pages_per_chunk=10)
    result, reader = build(tmp_path_factory.mktemp("ungrouped"), plan, make_rows(2500))
    assert result.pages == plan.total_pages == 44
    return plan, reader


def test_page_count_and_numbers_across_chunk_boundaries(
    ungrouped: tuple[ReportPlan, PdfReader],
) -> None:
    plan, reader = ungrouped
    assert len(reader.pages) == plan.total_pages
    for number in sampled_pages(plan):
        lines = page_text(reader, number)
        assert f"Page {number} of 44" in lines
        assert "Generated 2025-03-14 15:09:26 UTC" in lines
        assert lines[0] == TITLE
        assert lines[1:7] == ["ID", "Customer", "Region", "Amount", "Active", "Note"]
        spec = plan.page(number)
        # The page's first and last rows are the planned global rows.
        assert any(line.startswith(f"{spec.first_row + 1} Customer") for line in lines)
        last = spec.first_row + spec.row_count
        assert any(line.startswith(f"{last} Customer {last:05d}") for line in lines)
        assert not any(line.startswith(f"{last + 1} Customer") for line in lines)


def test_every_page_has_the_same_frame(ungrouped: tuple[ReportPlan, PdfReader]) -> None:
    _, reader = ungrouped
    boxes = {tuple(round(float(edge), 2) for edge in page.mediabox) for page in reader.pages}
    assert boxes == {(0, 0, round(LAYOUT.page_width, 2), round(LAYOUT.page_height, 2))}


def test_outline_every_thousand_rows(ungrouped: tuple[ReportPlan, PdfReader]) -> None:
    plan, reader = ungrouped
    assert bookmarks(reader) == [
        ("Rows 1\u20131,000", 1),
        ("Rows 1,001\u20132,000", 18),
        ("Rows 2,001\u20132,500", 36),
    ]
    assert [entry.page for entry in plan.outline] == [1, 18, 36]
    assert any(line.startswith("1001 Customer 01001") for line in page_text(reader, 18))


def test_metadata(ungrouped: tuple[ReportPlan, PdfReader]) -> None:
    _, reader = ungrouped
    metadata = reader.metadata
    assert metadata is not None
    assert metadata.title == TITLE
    assert metadata.creation_date == GENERATED
    assert metadata.producer == PRODUCER


def test_grouped_report_headings_and_continuations(tmp_path: Path) -> None:
    plan = plan_report(REGIONS, LAYOUT.rows_per_page, pages_per_chunk=2)
    result, reader = build(tmp_path, plan, make_rows(225, REGIONS))
    # North 130 rows: 3 pages; South 20: 1; West 75: 2.
    assert result.pages == len(reader.pages) == plan.total_pages == 6
    headings = [page_text(reader, number)[1] for number in range(1, 7)]
    assert headings == [
        "North",
        "North (continued)",
        "North (continued)",
        "South",
        "West",
        "West (continued)",
    ]
    assert any(line.startswith("151 Customer 00151 West") for line in page_text(reader, 5))
    assert bookmarks(reader) == [("North", 1), ("South", 4), ("West", 5)]


def test_hundred_page_chunks(tmp_path: Path) -> None:
    rows_per_page = LAYOUT.rows_per_page
    plan = plan_report([(None, 101 * rows_per_page + 1)], rows_per_page, pages_per_chunk=100)
    assert [chunk.page_count for chunk in plan.chunks] == [100, 2]
    _, reader = build(tmp_path, plan, make_rows(plan.total_rows))
    assert "Page 100 of 102" in page_text(reader, 100)
    assert "Page 101 of 102" in page_text(reader, 101)
    last = plan.total_rows
    assert any(line.startswith(f"{last} Customer {last:05d}") for line in page_text(reader, 102))


def test_an_empty_report_is_one_page_saying_no_rows(tmp_path: Path) -> None:
    plan = plan_report([(None, 0)], LAYOUT.rows_per_page, pages_per_chunk=100)
    _, reader = build(tmp_path, plan, [])
    assert len(reader.pages) == 1
    lines = page_text(reader, 1)
    assert "No rows" in lines
    assert "Page 1 of 1" in lines
    assert reader.outline == []


def test_rendering_is_reproducible() -> None:
    plan = plan_report([(None, 200)], LAYOUT.rows_per_page, pages_per_chunk=100)
    outputs = []
    for _ in range(2):
        out = io.BytesIO()
        render_chunk(
            out,
            title=TITLE,
            layout=LAYOUT,
            plan=plan,
            chunk=plan.chunks[0],
            rows=make_rows(200),
            generated_at=GENERATED,
        )
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("count", [199, 201])
def test_rows_that_do_not_match_the_plan_are_refused(count: int) -> None:
    plan = plan_report([(None, 200)], LAYOUT.rows_per_page, pages_per_chunk=100)
    with pytest.raises(ChunkRowsMismatch):
        render_chunk(
            io.BytesIO(),
            title=TITLE,
            layout=LAYOUT,
            plan=plan,
            chunk=plan.chunks[0],
            rows=make_rows(count),
            generated_at=GENERATED,
        )


def test_merge_again_replaces_the_report_whole(tmp_path: Path) -> None:
    plan = plan_report([(None, 300)], LAYOUT.rows_per_page, pages_per_chunk=2)
    paths = render_all(tmp_path, plan, make_rows(300))
    out = tmp_path / "report.pdf"
    kwargs: dict[str, Any] = {"title": TITLE, "created_at": GENERATED, "outline": plan.outline}
    first = merge_chunks(paths, out, **kwargs)
    content = out.read_bytes()
    second = merge_chunks(paths, out, **kwargs)
    assert first == second
    assert out.read_bytes() == content
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [path.name for path in paths] + ["report.pdf"]
    )


def test_a_failed_merge_leaves_no_file(tmp_path: Path) -> None:
    plan = plan_report([(None, 300)], LAYOUT.rows_per_page, pages_per_chunk=2)
    paths = render_all(tmp_path, plan, make_rows(300))
    out = tmp_path / "report.pdf"
    with pytest.raises(MergeError):
        merge_chunks(
            [*paths, tmp_path / "missing.pdf"],
            out,
            title=TITLE,
            created_at=GENERATED,
            outline=plan.outline,
        )
    with pytest.raises(MergeError):
        merge_chunks(
            paths[:-1],
            out,
            title=TITLE,
            created_at=GENERATED,
            outline=plan.outline,
            expected_pages=plan.total_pages,
        )
    assert sorted(tmp_path.iterdir()) == sorted(paths)
