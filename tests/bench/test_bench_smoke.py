"""The benchmarks still run: each one in a tiny mode, checked for sane results, not timings."""

from pathlib import Path

import pytest

from bench import analyzer, gateway, report

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_gateway_benchmark_accepts_every_request(tmp_path: Path) -> None:
    result = gateway.run(gateway.TINY, tmp_path)

    runs = result["runs"]
    assert {(r["target"], r["mode"]) for r in runs} == {
        (target, mode) for target in ("gateway", "baseline") for mode in ("open", "closed")
    }
    for r in runs:
        sent = r["sent"] + r["warmup_sent"]
        assert sent > 0, r
        assert r["failed"] == 0 and r["warmup_failed"] == 0, r
        assert r["accepted_total"] == sent, r
        assert r["queued"] == sent, r  # every 202 is a message on the broker
        if r["target"] == "gateway":
            assert r["job_rows"] == sent, r
        assert r["latency_ms"]["p50"] is not None
    opened = [r for r in runs if r["mode"] == "open"]
    assert all(r["sent"] == int(gateway.TINY.rate * gateway.TINY.duration_s) for r in opened)
    assert "gateway" in report.console("gateway", result)


def test_analyzer_benchmark_scores_every_blog(tmp_path: Path) -> None:
    result = analyzer.run(analyzer.TINY, tmp_path)

    baseline = result["baseline"]
    assert baseline["correct"] == baseline["blogs"] == analyzer.TINY.baseline_blogs
    (run,) = result["runs"]
    assert run["blogs"] == run["succeeded"] == run["correct"] == analyzer.TINY.blogs
    assert run["posts_crawled"] == 30 * analyzer.TINY.blogs
    assert run["blogs_per_s"] > 0
    assert "analyzer pool" in report.console("analyzer", result)


def test_results_render_to_json_and_docs(tmp_path: Path) -> None:
    data = {"gateway": {"runs": [], "ceiling": None}}
    wrapped = {
        "started_at": "2026-01-01T00:00:00+00:00",
        "quick": True,
        "elapsed_s": 1.0,
        "machine": {
            "cpu_model": "cpu",
            "cores": 2,
            "ram_gib": 1.0,
            "os": "Linux",
            "python": "3.11",
            "rabbitmq": "3",
            "postgres": "15",
            "redis": "7",
            "load_avg_at_start": [0.0, 0.0, 0.0],
        },
        "result": data["gateway"],
    }
    path = report.write_json("gateway", wrapped, results=tmp_path)
    docs = tmp_path / "benchmarks.md"
    docs.write_text(f"old\n{report.KEEP_MARKER}\nhand-written notes\n")
    report.render_docs(results=tmp_path, docs=docs)
    text = docs.read_text()
    assert path.exists() and "## Method" in text and "CPU: cpu, 2 cores" in text
    assert text.endswith("hand-written notes\n") and "old\n" not in text
