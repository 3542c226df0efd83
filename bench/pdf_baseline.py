"""Pdfgen baseline: the whole report rendered in one reportlab canvas, in one process.

`python -m bench.pdf_baseline --pages 10000` prints wall time and peak RSS as JSON. It draws
the same pages as the chunked pipeline (same layout, painter and sample rows): the plan simply
has one chunk holding every page, so reportlab keeps all of them until it saves. It adds no
outline, which only favours the baseline.
"""

import argparse
import json
import resource
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.pdfgen.layout import Column, layout_for
from services.pdfgen.planning import plan_report
from services.pdfgen.render import render_chunk

SAMPLE_COLUMNS = [
    Column("id", "ID", 50),
    Column("name", "Customer"),
    Column("city", "City"),
    Column("amount", "Amount", None, "right"),
    Column("active", "Active", 40, "center"),
    Column("note", "Note"),
]


def sample_rows(first: int, count: int) -> Iterator[dict[str, Any]]:
    """Deterministic rows first .. first+count-1: numbers, booleans, long text that gets cut."""
    for i in range(first, first + count):
        yield {
            "id": i + 1,
            "name": f"Customer {i:07d}",
            "city": "Amsterdam" if i % 3 else "Rotterdam-Zuid, a district with a long name",
            "amount": round(i * 1.37, 2),
            "active": i % 2 == 0,
            "note": "lorem ipsum dolor sit amet, consectetur adipiscing " * (1 + i % 2),
        }


def render_one_process(
    out_path: Path,
    *,
    title: str,
    columns: Sequence[Column],
    groups: Sequence[tuple[str | None, int]],
    rows: Iterable[Mapping[str, Any]],
    generated_at: datetime,
) -> int:
    """Render every page into one canvas and save it; returns the page count."""
    layout = layout_for(columns)
    probe = plan_report(groups, layout.rows_per_page, pages_per_chunk=1)
    plan = plan_report(groups, layout.rows_per_page, pages_per_chunk=probe.total_pages)
    with out_path.open("wb") as out:
        return render_chunk(
            out,
            title=title,
            layout=layout,
            plan=plan,
            chunk=plan.chunks[0],
            rows=rows,
            generated_at=generated_at,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pdf_baseline", description=__doc__)
    parser.add_argument("--pages", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("/tmp/pdf-baseline.pdf"))
    args = parser.parse_args(argv)
    rows_per_page = layout_for(SAMPLE_COLUMNS).rows_per_page
    count = args.pages * rows_per_page
    started = time.perf_counter()
    pages = render_one_process(
        args.out,
        title="Baseline report",
        columns=SAMPLE_COLUMNS,
        groups=[(None, count)],
        rows=sample_rows(0, count),
        generated_at=datetime.now(UTC),
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "pages": pages,
                "rows": count,
                "wall_s": round(time.perf_counter() - started, 2),
                "peak_rss_mb": round(peak_mb, 1),
                "bytes": args.out.stat().st_size,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
