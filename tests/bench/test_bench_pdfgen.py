"""The PDF report benchmark still runs: 100 pages through the pipeline and the baseline, checked
for correctness, not timings."""

import json
from pathlib import Path

import psycopg
import pytest

from bench import pdfgen, report, servers
from bench.pdf_baseline import sample_rows

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_the_upload_body_is_the_baselines_rows() -> None:
    lines = b"".join(pdfgen.ndjson(2, 50)).splitlines()
    assert len(lines) == 2 * pdfgen.ROWS_PER_PAGE == 114
    assert [json.loads(line) for line in lines] == list(sample_rows(0, 114))


def test_pdfgen_benchmark_renders_the_same_report_as_the_baseline(tmp_path: Path) -> None:
    result = pdfgen.run(pdfgen.TINY, tmp_path)

    (run,) = result["runs"]
    pages = pdfgen.TINY.pages[0]
    assert run["correct"], run
    assert run["status"] == "ready" and run["pages"] == pages
    assert run["upload"]["rows"] == pages * pdfgen.ROWS_PER_PAGE and run["upload"]["rejected"] == 0
    check = run["check"]
    assert check["declared_pages"] == check["tree_pages"] == check["pypdf_pages"] == pages
    assert check["first_page_footer"] and check["last_page_footer"]
    assert check["last_row_on_last_page"]
    chunks = -(-pages // pdfgen.TINY.pages_per_chunk)
    assert run["db"]["chunks"] == run["db"]["chunks_done"] == run["chunks_total"] == chunks
    assert run["pool_metrics"]["pages_rendered"] == pages
    assert run["pool_metrics"]["merges"] == 1 and run["pool_metrics"]["merge_s"] is not None
    memory = run["memory"]
    for kind in ("gateway_peak_mib", "pool_main_peak_mib", "render_children_max_mib"):
        assert memory[kind] and memory[kind] > 0, kind
    assert memory["children_seen"] >= 2
    # A 100-page merge may finish between two samples; its own getrusage peak is always there.
    assert run["pool_metrics"]["merge_peak_rss_mib"] > 0
    assert run["db"]["chunk_peak_rss_max_mib"] > 0
    baseline = run["baseline"]
    assert baseline["correct"] and baseline["pages"] == baseline["declared_pages"] == pages
    assert baseline["peak_rss_mib"] > 0 and baseline["wall_s"] > 0
    assert "pdfgen pool" in report.console("pdfgen", result)

    # Nothing is left behind in the bench database.
    with psycopg.connect(servers.DATABASE_URL) as conn:
        row = conn.execute(
            "SELECT count(*) FROM reports WHERE title = %s", (pdfgen.TITLE,)
        ).fetchone()
    assert row is not None and row[0] == 0
