import json
from collections.abc import Iterator

import pytest

from services.pdfgen.errors import ReportTooLarge
from services.pdfgen.planning import (
    BLANK_GROUP,
    GROUP_NAME_CHARS,
    ChunkPlan,
    OutlineEntry,
    ReportPlan,
    plan_report,
)


def check_chunks(plan: ReportPlan) -> None:
    """Chunks tile the pages and rows exactly, on page boundaries, none too long."""
    page, row = 1, 0
    for number, chunk in enumerate(plan.chunks):
        assert chunk.chunk_no == number
        assert chunk.first_page == page
        assert chunk.first_row == row
        assert 1 <= chunk.page_count <= plan.pages_per_chunk
        pages = list(plan.pages(chunk))
        assert [spec.number for spec in pages] == list(range(page, page + chunk.page_count))
        assert pages[0].first_row == chunk.first_row
        assert sum(spec.row_count for spec in pages) == chunk.row_count
        page += chunk.page_count
        row += chunk.row_count
    assert page - 1 == plan.total_pages
    assert row == plan.total_rows


def test_ungrouped_pages_and_chunks() -> None:
    plan = plan_report([(None, 2500)], rows_per_page=10, pages_per_chunk=100)
    assert (plan.total_rows, plan.total_pages) == (2500, 250)
    assert [(c.first_page, c.page_count, c.first_row, c.row_count) for c in plan.chunks] == [
        (1, 100, 0, 1000),
        (101, 100, 1000, 1000),
        (201, 50, 2000, 500),
    ]
    check_chunks(plan)


def test_a_partial_last_page() -> None:
    plan = plan_report([(None, 2501)], rows_per_page=57, pages_per_chunk=7)
    assert plan.total_pages == 44  # 43 full pages of 57 = 2451, then 50 rows
    last = plan.page(44)
    assert (last.first_row, last.row_count) == (2451, 50)
    assert plan.chunks[-1].page_count == 44 - 6 * 7
    check_chunks(plan)


@pytest.mark.parametrize(
    ("rows", "pages"),
    [(1, 1), (57, 1), (58, 2), (114, 2), (115, 3), (57 * 100, 100), (57 * 100 + 1, 101)],
)
def test_exact_page_counts(rows: int, pages: int) -> None:
    plan = plan_report([(None, rows)], rows_per_page=57, pages_per_chunk=100)
    assert plan.total_pages == pages
    assert len(plan.chunks) == -(-pages // 100)
    check_chunks(plan)


def test_no_rows_is_one_page_saying_so() -> None:
    plan = plan_report([(None, 0)], rows_per_page=57, pages_per_chunk=100)
    assert (plan.total_rows, plan.total_pages) == (0, 1)
    assert plan.chunks == [ChunkPlan(0, 1, 1, 0, 0)]
    assert plan.outline == []
    page = plan.page(1)
    assert (page.group, page.continued, page.row_count) == (None, False, 0)
    assert plan_report([], 57, 100).total_pages == 1


def test_one_row() -> None:
    plan = plan_report([(None, 1)], rows_per_page=57, pages_per_chunk=100)
    assert plan.total_pages == 1
    assert plan.chunks == [ChunkPlan(0, 1, 1, 0, 1)]
    assert plan.outline == [OutlineEntry("Rows 1\u20131", 1)]


def test_groups_start_new_pages_and_continue() -> None:
    plan = plan_report(
        [("North", 25), ("South", 10), ("East", 0), ("West", 21)],
        rows_per_page=10,
        pages_per_chunk=2,
    )
    # North: 3 pages (10, 10, 5), South: 1 page, East dropped, West: 3 pages (10, 10, 1).
    assert plan.total_pages == 7
    assert plan.total_rows == 56
    assert [
        (g.name, g.first_row, g.row_count, g.first_page, g.page_count) for g in plan.groups
    ] == [
        ("North", 0, 25, 1, 3),
        ("South", 25, 10, 4, 1),
        ("West", 35, 21, 5, 3),
    ]
    pages = [plan.page(n) for n in range(1, 8)]
    assert [(p.group, p.continued, p.first_row, p.row_count) for p in pages] == [
        ("North", False, 0, 10),
        ("North", True, 10, 10),
        ("North", True, 20, 5),
        ("South", False, 25, 10),
        ("West", False, 35, 10),
        ("West", True, 45, 10),
        ("West", True, 55, 1),
    ]
    assert plan.outline == [
        OutlineEntry("North", 1),
        OutlineEntry("South", 4),
        OutlineEntry("West", 5),
    ]
    # A chunk may cross a group boundary; its rows are the rows of its pages.
    assert [(c.first_page, c.page_count, c.first_row, c.row_count) for c in plan.chunks] == [
        (1, 2, 0, 20),
        (3, 2, 20, 15),
        (5, 2, 35, 20),
        (7, 1, 55, 1),
    ]
    check_chunks(plan)


def test_a_blank_group_name_in_a_grouped_report() -> None:
    plan = plan_report([("A", 3), (None, 2), ("", 1)], rows_per_page=10, pages_per_chunk=10)
    assert [g.name for g in plan.groups] == ["A", BLANK_GROUP, BLANK_GROUP]
    assert [entry.page for entry in plan.outline] == [1, 2, 3]


def test_outline_every_thousand_rows_at_the_page_of_its_first_row() -> None:
    plan = plan_report([(None, 2500)], rows_per_page=57, pages_per_chunk=100)
    assert plan.outline == [
        OutlineEntry("Rows 1\u20131,000", 1),
        OutlineEntry("Rows 1,001\u20132,000", 1000 // 57 + 1),
        OutlineEntry("Rows 2,001\u20132,500", 2000 // 57 + 1),
    ]
    for entry in plan.outline:
        first = int(entry.title.split()[1].split("\u2013")[0].replace(",", "")) - 1
        page = plan.page(entry.page)
        assert page.first_row <= first < page.first_row + page.row_count


def test_ten_thousand_pages_in_hundred_page_chunks() -> None:
    plan = plan_report([(None, 570_000)], rows_per_page=57, pages_per_chunk=100)
    assert plan.total_pages == 10_000
    assert len(plan.chunks) == 100
    assert all(chunk.page_count == 100 and chunk.row_count == 5700 for chunk in plan.chunks)
    assert len(plan.outline) == 570


def test_plan_round_trips_through_json() -> None:
    plan = plan_report([("a", 30), ("b", 5)], rows_per_page=7, pages_per_chunk=3)
    data = json.loads(json.dumps(plan.to_dict()))
    assert set(data) == {"rows_per_page", "pages_per_chunk", "total_rows", "total_pages", "chunks"}
    # A chunk: its first row, its row count and the groups on its pages (name, first row,
    # rows, first page); a group over several chunks is listed in each.
    assert data["chunks"][1] == [21, 14, [["a", 0, 30, 1], ["b", 30, 5, 6]]]
    again = ReportPlan.from_dict(data)
    assert again == plan
    assert again.page(6) == plan.page(6)
    assert again.outline == plan.outline == [OutlineEntry("a", 1), OutlineEntry("b", 6)]


def test_a_chunk_is_read_back_alone() -> None:
    plan = plan_report([("a", 30), ("b", 5), ("c", 20)], rows_per_page=7, pages_per_chunk=3)
    data = json.loads(json.dumps(plan.to_dict()))
    head = {key: value for key, value in data.items() if key != "chunks"}
    for chunk in plan.chunks:
        alone, alone_chunk = ReportPlan.for_chunk(
            head, data["chunks"][chunk.chunk_no], chunk.chunk_no
        )
        assert alone_chunk == chunk
        assert list(alone.pages(alone_chunk)) == list(plan.pages(chunk))
        assert alone.total_pages == plan.total_pages


def test_a_plan_stored_before_the_compact_form_still_reads() -> None:
    plan = plan_report([("a", 30), ("b", 5)], rows_per_page=7, pages_per_chunk=3)
    old = {
        "rows_per_page": 7,
        "pages_per_chunk": 3,
        "total_rows": 35,
        "total_pages": 6,
        "groups": [
            {"name": "a", "first_row": 0, "row_count": 30, "first_page": 1, "page_count": 5},
            {"name": "b", "first_row": 30, "row_count": 5, "first_page": 6, "page_count": 1},
        ],
        "chunks": [
            {"chunk_no": 0, "first_page": 1, "page_count": 3, "first_row": 0, "row_count": 21},
            {"chunk_no": 1, "first_page": 4, "page_count": 3, "first_row": 21, "row_count": 14},
        ],
        "outline": [{"title": "a", "page": 1}, {"title": "b", "page": 6}],
    }
    assert ReportPlan.from_dict(old) == plan
    head = {key: value for key, value in old.items() if key != "chunks"}
    alone, chunk = ReportPlan.for_chunk(head, old["chunks"][1], 1)
    assert chunk == plan.chunks[1]
    assert list(alone.pages(chunk)) == list(plan.pages(plan.chunks[1]))


def counted(
    groups: list[tuple[str | None, int]], seen: list[int]
) -> Iterator[tuple[str | None, int]]:
    for group in groups:
        seen.append(1)
        yield group


def test_too_many_groups_are_refused_without_reading_the_rest() -> None:
    seen: list[int] = []
    groups = [(f"g{i}", 1) for i in range(1000)]
    with pytest.raises(ReportTooLarge, match="more than 5 groups") as refused:
        plan_report(counted(groups, seen), 10, 10, max_groups=5, max_pages=1000)
    assert refused.value.code == "report_too_large"
    assert len(seen) == 6
    assert plan_report(groups[:5], 10, 10, max_groups=5).total_pages == 5


def test_too_many_pages_are_refused_without_reading_the_rest() -> None:
    with pytest.raises(ReportTooLarge, match="more than 100 pages"):
        plan_report([(None, 1001)], rows_per_page=10, pages_per_chunk=10, max_pages=100)
    assert plan_report([(None, 1000)], 10, 10, max_pages=100).total_pages == 100
    seen: list[int] = []
    groups = [(f"g{i}", 25) for i in range(1000)]  # 3 pages each
    with pytest.raises(ReportTooLarge, match="more than 100 pages"):
        plan_report(counted(groups, seen), 10, 10, max_groups=None, max_pages=100)
    assert len(seen) == 34


def test_the_default_caps() -> None:
    plan_report([(f"g{i}", 1) for i in range(10_000)], 57, 100)
    with pytest.raises(ReportTooLarge, match="more than 10,000 groups"):
        plan_report([(f"g{i}", 1) for i in range(10_001)], 57, 100)
    assert plan_report([(None, 200_000 * 57)], 57, 100).total_pages == 200_000
    with pytest.raises(ReportTooLarge, match="more than 200,000 pages"):
        plan_report([(None, 200_000 * 57 + 1)], 57, 100)


# What one chunk's entry may take: a few numbers, and per page at most one group of
# a name (cut to GROUP_NAME_CHARS) and three numbers.
CHUNK_BYTES = 48
GROUP_BYTES = GROUP_NAME_CHARS * 2 + 40


def test_a_big_grouped_plan_stays_proportional_to_its_chunks() -> None:
    # 10,000 groups of 20 rows, one page each: 100 chunks of 100 pages.
    groups = [(f"Customer {i:05d}", 20) for i in range(10_000)]
    plan = plan_report(groups, rows_per_page=57, pages_per_chunk=100)
    data = plan.to_dict()
    assert len(plan.chunks) == 100
    for entry in data["chunks"]:
        assert len(json.dumps(entry)) <= CHUNK_BYTES + 100 * 40
    assert len(json.dumps(data)) <= len(plan.chunks) * (CHUNK_BYTES + 100 * 40) + 200


def test_an_ungrouped_plan_of_two_hundred_thousand_pages_is_a_few_bytes_a_chunk() -> None:
    plan = plan_report([(None, 200_000 * 37)], rows_per_page=37, pages_per_chunk=100)
    data = json.dumps(plan.to_dict())
    assert len(plan.chunks) == 2000
    assert len(data) <= 2000 * CHUNK_BYTES
    assert len(plan.outline) == 200_000 * 37 // 1000  # computed, not stored


def test_long_group_names_are_cut_in_the_plan() -> None:
    plan = plan_report([("x" * 10_000, 1), ("y", 1)], rows_per_page=10, pages_per_chunk=10)
    name = plan.groups[0].name
    assert name is not None and len(name) == GROUP_NAME_CHARS and name.endswith("\u2026")
    assert len(json.dumps(plan.to_dict(), ensure_ascii=False)) <= CHUNK_BYTES + 2 * GROUP_BYTES


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        plan_report([(None, 10)], rows_per_page=0, pages_per_chunk=1)
    with pytest.raises(ValueError):
        plan_report([(None, -1)], rows_per_page=10, pages_per_chunk=1)
    plan = plan_report([(None, 10)], rows_per_page=10, pages_per_chunk=1)
    with pytest.raises(ValueError):
        plan.page(2)
