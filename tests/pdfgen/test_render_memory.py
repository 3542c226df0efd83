"""Rendering a chunk keeps memory flat: measured in a fresh process from its VmHWM.

Not getrusage: Linux carries ru_maxrss across exec, so a child forked from a big pytest process
starts with the parent's peak.
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Peak RSS after the imports, then after rendering a 100-page chunk of a 100,000-page report
# whose rows are generated one at a time.
SCRIPT = """
import json
from datetime import UTC, datetime
from services.pdfgen.memory import peak_bytes
from services.pdfgen.layout import Column, layout_for
from services.pdfgen.planning import plan_report
from services.pdfgen.render import render_chunk

layout = layout_for([Column("id", "ID", 50), Column("name", "Name"), Column("amount", "Amount"),
                     Column("note", "Note")])
plan = plan_report([(None, 100_000 * layout.rows_per_page)], layout.rows_per_page, 100)

def rows(first, count):
    for i in range(first, first + count):
        yield {"id": i + 1, "name": f"Customer {i:08d}", "amount": i * 1.5,
               "note": "a long note that will be cut with an ellipsis " * 3}

def render(chunk_no):
    chunk = plan.chunks[chunk_no]
    with open("/dev/null", "wb") as out:
        return render_chunk(out, title="Memory", layout=layout, plan=plan, chunk=chunk,
                            rows=rows(chunk.first_row, chunk.row_count),
                            generated_at=datetime.now(UTC))

def peak_mb():
    return peak_bytes() / 2**20

before = peak_mb()
pages = render(500)
print(json.dumps({"before": before, "after": peak_mb(), "pages": pages}))
"""


def test_one_hundred_page_chunk_keeps_peak_rss_growth_small() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, check=True
    )
    measured = json.loads(done.stdout)
    assert measured["pages"] == 100
    assert measured["after"] - measured["before"] < 100, measured
    assert measured["after"] < 256, measured
