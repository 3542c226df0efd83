"""Reports in Korean (and anything else the font has): embedded TrueType, text read back."""

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from pypdf.generic import DictionaryObject

from services.pdfgen import fonts
from services.pdfgen.errors import FontMissing
from services.pdfgen.layout import FONT, Column, fit_text, layout_for
from services.pdfgen.merge import merge_chunks
from services.pdfgen.planning import plan_report
from tests.pdfgen.test_render_merge import GENERATED, bookmarks, page_text, render_all

TITLE = "2026년 3분기 지역별 매출 보고서"
COLUMNS = [
    Column("id", "번호", 40),
    Column("region", "지역"),
    Column("customer", "고객명"),
    Column("memo", "메모 (Memo)"),
]
REGIONS = ["서울특별시", "부산광역시", "제주특별자치도"]
# Syllables enough to need several 256-code font subsets in one document.
SYLLABLES = [chr(0xAC00 + i * 7) for i in range(600)]


def rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i + 1,
            "region": REGIONS[i * len(REGIONS) // count],
            "customer": "".join(SYLLABLES[(i * 3 + k) % len(SYLLABLES)] for k in range(3)),
            "memo": f"주문 {i + 1}건 · café €{i}" if i % 2 else "plain ASCII note",
        }
        for i in range(count)
    ]


def build(tmp_path: Path, data: list[dict[str, Any]], groups: list[Any]) -> PdfReader:
    """Plan (3-page chunks), render every chunk and merge them, as pdfgen does."""
    layout = layout_for(COLUMNS)
    plan = plan_report(groups, layout.rows_per_page, pages_per_chunk=3)
    paths = render_all(tmp_path, plan, data, layout, TITLE)
    merged = tmp_path / "report.pdf"
    merge_chunks(paths, merged, title=TITLE, created_at=GENERATED, outline=plan.outline)
    return PdfReader(merged, strict=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], PdfReader]:
    data = rows(600)
    groups = [(r, sum(1 for row in data if row["region"] == r)) for r in REGIONS]
    reader = build(tmp_path_factory.mktemp("korean"), data, groups)
    assert len(reader.pages) > 3  # more than one chunk
    return data, reader


def test_korean_text_reads_back_as_written(report: tuple[list[dict[str, Any]], PdfReader]) -> None:
    data, reader = report
    lines = [line for page in range(1, len(reader.pages) + 1) for line in page_text(reader, page)]
    assert lines[0] == TITLE
    assert "서울특별시" in lines and "제주특별자치도 (continued)" in lines
    assert lines[2:6] == ["번호", "지역", "고객명", "메모 (Memo)"]  # the header row
    text = "\n".join(lines)
    for row in data:  # every customer's name, from every subset of the font
        assert row["customer"] in text, row
    assert "주문 2건 · café €1" in text and "plain ASCII note" in text
    assert "?" not in text


def test_bookmarks_are_the_korean_group_names(
    report: tuple[list[dict[str, Any]], PdfReader],
) -> None:
    _, reader = report
    assert [title for title, _ in bookmarks(reader)] == REGIONS


def test_the_font_is_embedded_as_subsets(report: tuple[list[dict[str, Any]], PdfReader]) -> None:
    _, reader = report
    resources = reader.pages[0]["/Resources"]
    assert isinstance(resources, DictionaryObject)
    used = [font.get_object() for font in resources["/Font"].values()]
    names = {str(font["/BaseFont"]) for font in used}
    assert any(name.endswith("+NanumGothic") for name in names), names
    assert any(name.endswith("+NanumGothicBold") for name in names), names
    assert all("/FontFile2" in font["/FontDescriptor"] for font in used)  # embedded TrueType
    assert len([n for n in names if n.endswith("+NanumGothic")]) > 1  # several subsets


def test_korean_text_is_cut_to_its_column() -> None:
    text = "제주특별자치도 서귀포시 중문관광로 72번길"
    fitted, drawn = fit_text(text, 60, FONT, 8)
    assert fitted.endswith("\u2026") and text.startswith(fitted[:-1])
    assert 0 < drawn <= 60


def test_an_empty_string_and_a_lone_syllable(tmp_path: Path) -> None:
    data = [{"id": 1, "region": "서울특별시", "customer": "", "memo": "가"}]
    reader = build(tmp_path, data, [(None, len(data))])
    assert "1 서울특별시 가" in page_text(reader, 1)


def test_a_missing_or_broken_font_is_refused_with_the_remedy(tmp_path: Path) -> None:
    not_a_font = tmp_path / "font.ttf"
    not_a_font.write_bytes(b"not a font")
    program = "from services.pdfgen import fonts; fonts.register({path!r}, {path!r})"
    for path, message in [
        (str(tmp_path / "missing.ttf"), "install Debian's fonts-nanum"),
        (str(not_a_font), "is not a usable TrueType font"),
    ]:
        run = subprocess.run(
            [sys.executable, "-c", program.format(path=path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0 and message in run.stderr, run.stderr
    with pytest.raises(FontMissing, match="already"):
        fonts.register(str(not_a_font), str(not_a_font))  # this process has its fonts


def test_a_pdfgen_worker_without_its_font_does_not_start(tmp_path: Path) -> None:
    env = {"OFFLOAD_PDF_FONT_PATH": str(tmp_path / "gone.ttf"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run(
        [sys.executable, "-c", "import services.pdfgen.worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode != 0
    assert f"report font {tmp_path / 'gone.ttf'} does not exist" in run.stderr
