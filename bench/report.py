"""Results: JSON files in bench/results/, console tables, and docs/benchmarks.md."""

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS = ROOT / "docs" / "benchmarks.md"
# Everything below this line in docs/benchmarks.md is written by hand and kept across runs.
KEEP_MARKER = "<!-- notes below are written by hand and kept when bench rewrites this file -->"

GATEWAY_TARGETS = {"jobs_per_s": 2000.0, "p99_ms_at_1000": 25.0, "vs_baseline": 3.0}
ANALYZER_TARGET_BLOGS_PER_S = 20.0
PUSHER_GROUPS = ("gateway", "pool", "sandbox", "rabbitmq", "postgres", "redis")


def write_json(name: str, data: dict[str, Any], results: Path = RESULTS) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    if not a or not b:
        return "-"
    return f"{a / b:.2f}x"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def gateway_table(data: dict[str, Any]) -> list[str]:
    """The gateway and baseline runs, gateway rows with ratios to the same-config baseline."""
    base = {(r["workers"], r["mode"]): r for r in data["runs"] if r["target"] == "baseline"}
    rows = []
    for r in data["runs"]:
        ref = base.get((r["workers"], r["mode"])) if r["target"] == "gateway" else None
        load = (
            f"open {r['offered_per_s']:,.0f}/s"
            if r["mode"] == "open"
            else f"closed {r['connections']} conns"
        )
        lat = r["latency_ms"]
        rows.append(
            [
                "gateway" if r["target"] == "gateway" else "baseline (Celery delay)",
                str(r["workers"]),
                load,
                _fmt(r["accepted_per_s"]),
                _fmt(lat["p50"], 2),
                _fmt(lat["p99"], 2),
                str(r["failed"]),
                _ratio(r["accepted_per_s"], ref["accepted_per_s"]) if ref else "",
                _ratio(lat["p99"], ref["latency_ms"]["p99"]) if ref else "",
                _fmt(r["server_cpu_us_per_request"], 0),
                "yes" if r["consistent"] else "NO",
            ]
        )
    return _table(
        [
            "target",
            "workers",
            "load",
            "accepted jobs/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "jobs/s vs baseline",
            "p99 vs baseline",
            "server CPU µs/req",
            "queue = accepted",
        ],
        rows,
    )


def ceiling_lines(data: dict[str, Any]) -> list[str]:
    ceiling = data.get("ceiling")
    if not ceiling:
        return []
    closed, opened = ceiling["closed"], ceiling["open"]
    return [
        f"Load generator ceiling (same client, `POST /noop` on one uvicorn worker that does "
        f"nothing): closed loop {closed['accepted_per_s']:,.0f} req/s at "
        f"{closed['cpu_us_per_request']:.0f} µs of client CPU a request; open loop at "
        f"{opened['offered_per_s']:,.0f} req/s p50 {opened['latency_ms']['p50']:.2f} ms, "
        f"p99 {opened['latency_ms']['p99']:.2f} ms, client using "
        f"{opened['cpu_share_of_one_core'] * 100:.0f}% of one core "
        f"(max send lag {opened['max_send_lag_ms']:.1f} ms).",
    ]


def gateway_verdict(data: dict[str, Any]) -> list[str]:
    """The issue's targets against the best gateway configuration measured."""
    gw = [r for r in data["runs"] if r["target"] == "gateway"]
    base = {(r["workers"], r["mode"]): r for r in data["runs"] if r["target"] == "baseline"}
    closed = [r for r in gw if r["mode"] == "closed"]
    opened = [r for r in gw if r["mode"] == "open"]
    if not closed or not opened:
        return []
    best = max(closed, key=lambda r: r["accepted_per_s"])
    best_open = min(opened, key=lambda r: r["latency_ms"]["p99"] or 1e9)
    ratio = best["accepted_per_s"] / base[(best["workers"], "closed")]["accepted_per_s"]
    t = GATEWAY_TARGETS

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    p99 = best_open["latency_ms"]["p99"] or 1e9
    return [
        f"- max confirmed jobs/s: {best['accepted_per_s']:,.0f} "
        f"({best['workers']} worker(s)); target ≥ {t['jobs_per_s']:,.0f}: "
        f"{mark(best['accepted_per_s'] >= t['jobs_per_s'])}",
        f"- p99 at {best_open['offered_per_s']:,.0f} req/s offered: {p99:,.2f} ms "
        f"({best_open['workers']} worker(s), {best_open['failed']} errors); target ≤ "
        f"{t['p99_ms_at_1000']:.0f} ms: {mark(p99 <= t['p99_ms_at_1000'])}",
        f"- max jobs/s vs the Celery baseline with the same workers: {ratio:.2f}x; target ≥ "
        f"{t['vs_baseline']:.0f}x: {mark(ratio >= t['vs_baseline'])}",
    ]


def analyzer_table(data: dict[str, Any]) -> list[str]:
    b = data["baseline"]
    rows = [
        [
            "baseline: one process, one page at a time",
            "1",
            str(b["blogs"]),
            f"{b['correct']}/{b['blogs']}",
            _fmt(b["elapsed_s"], 2),
            _fmt(b["blogs_per_s"], 2),
            "1.00x",
            "-",
            "-",
        ]
    ]
    for r in data["runs"]:
        rows.append(
            [
                "gateway → analyzer pool",
                str(r["concurrency"]),
                str(r["blogs"]),
                f"{r['correct']}/{r['blogs']}",
                _fmt(r["elapsed_s"], 2),
                _fmt(r["blogs_per_s"], 2),
                _ratio(r["blogs_per_s"], b["blogs_per_s"]),
                _fmt(r["pool_cpu_ms_per_blog"], 0),
                f"{r['machine_cpu_utilisation'] * 100:.0f}%",
            ]
        )
    return _table(
        [
            "run",
            "concurrency",
            "blogs",
            "succeeded & correct",
            "seconds",
            "blogs/s",
            "vs baseline",
            "pool CPU ms/blog",
            "machine CPU busy",
        ],
        rows,
    )


def analyzer_verdict(data: dict[str, Any]) -> list[str]:
    if not data["runs"]:
        return []
    best = max(data["runs"], key=lambda r: r["blogs_per_s"])
    ok = best["blogs_per_s"] >= ANALYZER_TARGET_BLOGS_PER_S
    return [
        f"- best: {best['blogs_per_s']:.2f} blogs/s at concurrency {best['concurrency']}; "
        f"target ≥ {ANALYZER_TARGET_BLOGS_PER_S:.0f}: {'met' if ok else 'MISSED'}"
    ]


def devices_table(data: dict[str, Any]) -> list[str]:
    rows = [
        [
            "fresh registry: every row inserted"
            if r["pass"] == "insert"
            else "same fleet again, every user id changed: every row updated",
            f"{r['devices']:,}",
            _fmt(r["body_mib"]),
            _fmt(r["elapsed_s"], 2),
            _fmt(r["rows_per_s"], 0),
            f"{r['gateway_rss_start_mib']:.0f} → {r['gateway_rss_peak_mib']:.0f}",
            "yes" if r["correct"] else "NO",
        ]
        for r in data["runs"]
    ]
    return _table(
        [
            "import",
            "rows",
            "NDJSON MiB",
            "seconds",
            "rows/s",
            "gateway RSS MiB (start → peak)",
            "counts and table correct",
        ],
        rows,
    )


def devices_verdict(data: dict[str, Any]) -> list[str]:
    lines = []
    for r in data["runs"]:
        per_million = r["elapsed_s"] / r["devices"] * 1_000_000
        ok = per_million < data["target_s"]
        lines.append(
            f"- {r['pass']}: {per_million:.1f} s per 1,000,000 rows; target < "
            f"{data['target_s']:.0f} s: {'met' if ok else 'MISSED'}"
        )
    return lines


def pusher_table(data: dict[str, Any]) -> list[str]:
    """One row per pool size: time, rates, ratios to the sandbox's limit, correctness."""
    limit = data["sandbox_max"]["accepted_per_s"]
    rows = [
        [
            "sandbox alone: load generator, closed loop",
            f"{data['sandbox_max']['connections']} conns",
            "-",
            "-",
            _fmt(limit, 0),
            "-",
            "1.00x",
            "-",
            "-",
            "-",
        ]
    ]
    for r in data["runs"]:
        rows.append(
            [
                "gateway → pusher bulk pool → sandbox",
                str(r["concurrency"]),
                f"{r['devices']:,}",
                _fmt(r["elapsed_s"], 1),
                _fmt(r["msg_per_s"], 0),
                _fmt(r["steady_msg_per_s"], 0),
                _ratio(r["msg_per_s"], limit),
                _ratio(r["steady_msg_per_s"], limit),
                f"{r['usage']['machine_cpu_busy'] * 100:.0f}%",
                "yes" if r["correct"] else "NO",
            ]
        )
    return _table(
        [
            "run",
            "pool concurrency",
            "devices",
            "seconds",
            "msg/s",
            "steady msg/s (20-80%)",
            "vs sandbox max",
            "steady vs sandbox max",
            "machine CPU busy",
            "stats = sent = succeeded = N, sandbox distinct = N, 0 duplicates",
        ],
        rows,
    )


def pusher_memory_table(data: dict[str, Any]) -> list[str]:
    """Peak memory and CPU per message of every process group, per pool size."""
    rows = []
    for r in data["runs"]:
        groups = r["usage"]["groups"]
        for name in PUSHER_GROUPS:
            g = groups.get(name)
            if g is None:
                continue
            each = ", ".join(f"{k} {v:.0f}" for k, v in g["peak_rss_mib_by_process"].items())
            rows.append(
                [
                    str(r["concurrency"]),
                    name,
                    _fmt(g["peak_mib"], 0),
                    each,
                    _fmt(r["cpu_us_per_msg"].get(name), 1),
                ]
            )
    return _table(
        [
            "pool concurrency",
            "process group",
            "peak MiB (group)",
            "peak RSS MiB per process",
            "CPU µs per message",
        ],
        rows,
    )


def pusher_lines(data: dict[str, Any]) -> list[str]:
    limit = data["sandbox_max"]
    runs = ", ".join(
        f"{r['connections']} conns {r['accepted_per_s']:,.0f}/s "
        f"(sandbox CPU {r['sandbox_cpu_us_per_request']:.0f} µs/request)"
        for r in limit["runs"]
    )
    imported = data["import"]
    return [
        f"Sandbox maximum accept rate in this run: {limit['accepted_per_s']:,.0f} msg/s ({runs}). "
        f"Device import before the campaigns: {imported['devices']:,} rows in "
        f"{imported['elapsed_s']:.1f} s.",
        "",
        *pusher_memory_table(data),
    ]


def pusher_verdict(data: dict[str, Any]) -> list[str]:
    runs = [r for r in data["runs"] if r["correct"]]
    if not runs:
        return ["- no campaign completed correctly: MISSED"]
    best = max(runs, key=lambda r: r["msg_per_s"])
    t = data["targets"]
    limit = data["sandbox_max"]["accepted_per_s"]

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    per_million = best["wall_s_per_million"]
    scaled = "" if best["devices"] == 1_000_000 else f" (scaled from {best['devices']:,})"
    share = best["msg_per_s"] / limit
    return [
        f"- best: pool concurrency {best['concurrency']}, {best['msg_per_s']:,.0f} msg/s",
        f"- wall time per 1,000,000 devices: {per_million:,.1f} s{scaled}; target ≤ "
        f"{t['wall_s_per_million']:.0f} s: {mark(per_million <= t['wall_s_per_million'])}",
        f"- msg/s: {best['msg_per_s']:,.0f}; target ≥ {t['msg_per_s']:,.0f}: "
        f"{mark(best['msg_per_s'] >= t['msg_per_s'])}",
        f"- share of the sandbox's own maximum ({limit:,.0f}/s): {share * 100:.0f}% (steady "
        f"{(best['steady_vs_sandbox_max'] or 0) * 100:.0f}%); target ≥ "
        f"{t['sandbox_share'] * 100:.0f}%: {mark(share >= t['sandbox_share'])}",
        *[
            f"- pool concurrency {r['concurrency']}: campaign not correct or not completed "
            f"(status {r['status']}, sent {r['stats']['sent']:,} of {r['devices']:,})"
            for r in data["runs"]
            if not r["correct"]
        ],
    ]


def _load(values: list[float] | None) -> str:
    return "-" if not values else ", ".join(f"{v:.1f}" for v in values)


def pdfgen_table(data: dict[str, Any]) -> list[str]:
    """Wall time of the pipeline and of the one-process baseline, per report size."""
    rows = []
    for r in data["runs"]:
        b = r.get("baseline")
        if b:
            rows.append(
                [
                    "baseline: one process, one canvas",
                    f"{r['pages']:,}",
                    _fmt(b["wall_s"], 1),
                    _fmt(b["pages_per_s"], 0),
                    "1.00x",
                    "-",
                    "-",
                    "-",
                    "-",
                    _load(b.get("load_avg_before")),
                    "yes" if b["correct"] else "NO",
                ]
            )
        up = r["upload"]
        merge = (r.get("pool_metrics") or {}).get("merge_s") or r.get("merge_s_polled")
        rows.append(
            [
                f"gateway → pdfgen pool ({data['plan']['concurrency']} children, "
                f"{data['plan']['pages_per_chunk']} pages a chunk)",
                f"{r['pages']:,}",
                _fmt(r["wall_s"], 1),
                _fmt(r["pages_per_s"], 0),
                _ratio(b["wall_s"], r["wall_s"]) if b else "-",
                f"{up['elapsed_s']:.1f} ({up['mib']:,.0f} MiB)",
                _fmt(r.get("render_s"), 1),
                _fmt(merge, 1),
                f"{r['usage']['machine_cpu_busy'] * 100:.0f}%",
                _load(r["usage"].get("load_avg_before")),
                "yes" if r["correct"] else "NO",
            ]
        )
    return _table(
        [
            "run",
            "pages",
            "seconds",
            "pages/s",
            "speed vs baseline",
            "upload s (body)",
            "plan + render s",
            "merge s",
            "machine CPU busy",
            "load avg at start",
            "pages and footers correct",
        ],
        rows,
    )


def pdfgen_memory_table(data: dict[str, Any]) -> list[str]:
    """Peak RSS (MiB) of every process kind, per report size, beside the baseline's."""
    rows = []
    for r in data["runs"]:
        m, db, pm = r["memory"], r["db"], r.get("pool_metrics") or {}
        b = r.get("baseline")
        rows.append(
            [
                f"{r['pages']:,}",
                _fmt(m["gateway_peak_mib"], 0),
                _fmt(m["pool_main_peak_mib"], 0),
                f"{_fmt(m['render_children_max_mib'], 0)} / {_fmt(db['chunk_peak_rss_max_mib'], 0)}"
                f" ({db['chunks']:,} chunks)",
                f"{_fmt(m['merge_child_peak_mib'], 0)} / {_fmt(pm.get('merge_peak_rss_mib'), 0)}",
                _fmt(r.get("max_process_peak_mib"), 0),
                f"{_fmt(b['peak_rss_mib'], 0)}" if b else "-",
            ]
        )
    return _table(
        [
            "pages",
            "gateway",
            "pool main",
            "render children, max (sampled / getrusage)",
            "merge child (sampled / getrusage)",
            "largest pipeline process",
            "baseline process",
        ],
        rows,
    )


def pdfgen_lines(data: dict[str, Any]) -> list[str]:
    lines = ["Peak RSS in MiB:", "", *pdfgen_memory_table(data), ""]
    for r in data["runs"]:
        db, pm = r["db"], r.get("pool_metrics") or {}
        lines.append(
            f"- {r['pages']:,} pages: {db['chunks']:,} render tasks took "
            f"{db['chunk_render_s_sum']:,.1f} s of task time "
            f"(mean {db['chunk_render_s_mean']:.2f} s, max "
            f"{db['chunk_render_s_max']:.2f} s), {db['chunk_render_s_sum'] / 2:,.1f} s on 2 slots "
            f"against {r.get('render_s') or 0:,.1f} s of wall time from plan to merge; merge "
            f"{pm.get('merge_s') or 0:.1f} s; server side (created → ready) "
            f"{db['server_s'] or 0:.1f} s; PDF {r.get('bytes', 0) / 2**20:,.0f} MiB, downloaded "
            f"in {r.get('download_s', 0):.1f} s; pool children seen "
            f"{r['memory']['children_seen']:,}."
        )
    return lines


def pdfgen_verdict(data: dict[str, Any]) -> list[str]:
    t = data["targets"]

    def mark(ok: bool) -> str:
        return "met" if ok else "MISSED"

    lines = []
    by_pages = {r["pages"]: r for r in data["runs"]}
    main = by_pages.get(t["wall_pages"])
    if main is None:
        main = max(data["runs"], key=lambda r: r["pages"], default=None)
        scale = t["wall_pages"] / main["pages"] if main else 0
        if main:
            lines.append(
                f"- (no {t['wall_pages']:,}-page run in this mode; {main['pages']:,} pages scaled "
                f"linearly for the wall-time line)"
            )
    else:
        scale = 1.0
    if main is not None:
        wall = main["wall_s"] * scale
        lines.append(
            f"- {t['wall_pages']:,} pages in {wall:,.1f} s; target ≤ {t['wall_s']:.0f} s: "
            f"{mark(wall <= t['wall_s'] and main['correct'])}"
        )
        peak = main.get("max_process_peak_mib") or 0
        lines.append(
            f"- largest process at {main['pages']:,} pages: {peak:,.0f} MiB; target every process "
            f"≤ {t['rss_mb']:.0f} MiB: {mark(peak <= t['rss_mb'])}"
        )
    large = by_pages.get(t["large_pages"])
    if large is None:
        lines.append(
            f"- {t['large_pages']:,} pages: not run in this run "
            "(`python -m bench pdfgen --pdf-100k`)"
        )
    else:
        peak = large.get("max_process_peak_mib") or 0
        merge = large["memory"]["merge_child_peak_mib"]
        lines.append(
            f"- {t['large_pages']:,} pages in {large['wall_s']:,.1f} s "
            f"({large['pages_per_s']:,.0f} pages/s), largest process {peak:,.0f} MiB (merge child "
            f"{merge or 0:,.0f} MiB); every process ≤ {t['large_rss_mb']:.0f} MiB: "
            f"{mark(peak <= t['large_rss_mb'] and large['correct'])}"
        )
    return lines


def console(name: str, data: dict[str, Any]) -> str:
    """What `python -m bench` prints for one benchmark."""
    if name == "gateway":
        lines = [*gateway_table(data), "", *ceiling_lines(data), *gateway_verdict(data)]
    elif name == "devices":
        lines = [*devices_table(data), "", *devices_verdict(data)]
    elif name == "pusher":
        lines = [*pusher_table(data), "", *pusher_lines(data), "", *pusher_verdict(data)]
    elif name == "pdfgen":
        lines = [*pdfgen_table(data), "", *pdfgen_lines(data), "", *pdfgen_verdict(data)]
    else:
        lines = [*analyzer_table(data), "", *analyzer_verdict(data)]
    return "\n".join([f"== {name}", *lines, ""])


METHOD = """\
# Benchmarks

Written by `python -m bench` (`make bench`); every ratio compares numbers measured in the same
run on the same machine. Raw results: `bench/results/<name>.json`.

## Method

**Gateway** (`python -m bench gateway`). The gateway (`python -m services.gateway`) and the
baseline (`bench/baseline_app.py`: a plain FastAPI app whose sync `def` route calls Celery's
`apply_async` with `confirm_publish`, served by uvicorn) run in turn with the same number of
uvicorn workers against the same RabbitMQ exchange and priority queue. Each takes two loads of
`POST /v1/analyses`, every request naming a distinct blog (the cache and single-flight paths
never answer): an open loop sending at a fixed rate whatever the answers do (latency counted
from each request's scheduled time, so queueing shows), and a closed loop of back-to-back
clients for the maximum. Both follow a warm-up that is not counted. "Accepted" means a 202:
for the gateway the broker confirmed the message and the job row was committed; after each
run the queue depth (and job rows) must equal the accepted count ("queue = accepted"). Nothing
consumes the queue; it is purged and the tables truncated after each run. The load generator
(`bench/loadgen.py`) is a minimal keep-alive HTTP/1.1 client on uvloop in its own process; its
own ceiling against a route that does nothing is measured in the same run. "Server CPU" is the
CPU time of the server's process tree divided by requests sent. Client, server, RabbitMQ and
Postgres share the same cores.

**Analyzer** (`python -m bench analyzer`). WordPress-style blogs from the test suite's
BlogServer (`BlogServer(count=N)`, 45 posts each, the analyzer scores the 30 newest) answer
every page after a fixed latency. The blogs are submitted through a real gateway to a real
analyzer pool (`python -m services.analyzer --concurrency C`, prefork), timed from the first
submission until every job has finished (each result is checked against the blog's expected
metrics). Each pool is warmed with one job per child first. The baseline crawls and scores
blogs in one process, one page after another (the analyzer's own crawler with per-host
concurrency 1 and its scorer: the same parsing work), as the original did; it is linear, so a
few blogs measure its rate. All blogs share one host (127.0.0.1:port), but `crawl_blog` keys
its per-host cap (4) inside one crawl, so tasks do not share it: the same as N blogs on N
hosts. The benchmarks use their own vhost (`offload-bench`), database (`offload_bench`) and
Redis database (13), so a concurrent test run neither consumes nor loses their messages.

**Device import** (`python -m bench devices`). One gateway process (one uvicorn worker) takes
`POST /v1/devices/import` with 1,000,000 NDJSON registrations (~230 bytes each: an FCM-shaped
token, platform, user id, one topic) generated on the fly by the benchmark process and sent as
one chunked upload (nothing holds the file). Timed from the first byte to the summary; the
summary's counts and the row count of `devices` are checked. The first pass starts from an
empty table (all inserts), the second sends the same tokens with new user ids (all updates).
The gateway's RSS is sampled every 20 ms. Client, gateway and Postgres share the same cores.

**Push campaign** (`python -m bench pusher`). In one run: the FCM sandbox
(`python -m services.fcm_sandbox`, its own process) first takes closed-loop load from
`bench/loadgen.py` (keep-alive connections posting FCM v1 `messages:send` bodies built by
firebase-admin exactly as the pusher builds them, every token distinct) for its own maximum
accept rate, and is then reset. N devices (1,000,000; FCM-shaped tokens) are imported through
the gateway with the device benchmark's streaming upload. For each pool size a fresh bulk pool
(`python -m services.pusher --queues pusher.bulk --concurrency C`, prefork, the global rate
limit at 1,000,000/s so it never waits) delivers one campaign (`target: all`) created and sent
through the gateway's API; the run is timed from the send request until
`GET /v1/campaigns/{id}/stats` says completed (polled every 0.2 s; "steady" is the rate
between 20% and 80% sent). Checked: stats total = sent = succeeded = N with no failure, the job
succeeded, N `deliveries` rows, and the sandbox recorded N distinct tokens for the campaign
with no duplicate and no rejection. Every 0.5 s the RSS and CPU time of each process are
sampled: the gateway, the pool's main process and each child, the sandbox, and the shared
RabbitMQ (`beam.smp`), Postgres (all server processes) and Redis. A group's peak counts each
process's private memory plus the largest shared part once (forked children and Postgres
shared buffers would otherwise count several times). RabbitMQ, Postgres and Redis serve
whatever else runs on the machine too; "machine CPU busy" shows how much of both cores was in
use. Between pool sizes the campaign tables are truncated and the sandbox reset; at the end
the devices, campaigns and their jobs are removed.

**PDF reports** (`python -m bench pdfgen [--pdf-100k]`). For each size (10,000 pages; 100,000
with `--pdf-100k`) the rows (`bench.pdf_baseline.sample_rows`, 57 a page, six columns) are
generated on the fly and streamed as NDJSON to a real gateway (`POST /v1/uploads`, timed on
its own), then a fresh pool (`python -m services.pdfgen --concurrency 2`, one task per child
process, `OFFLOAD_PDF_PAGES_PER_CHUNK=100`, local file storage in a temporary directory)
renders the report submitted with `POST /v1/reports`: timed from the submission until
`GET /v1/reports/{id}` says ready (polled every 0.2 s; "plan + render" ends when the status
turns `merging`). Every 0.2 s the RSS of every process is sampled with psutil: the gateway,
the pool's main process and each pool child as it comes and goes; the merge child is the
child alive during `merging` with the largest peak. Each task's own peak from `getrusage`
(in `report_chunks.peak_rss_bytes`, and the pool's `offload_pdfgen_task_peak_rss_bytes`
for the merge) is shown beside the sampled one, with the merge's duration from
`offload_pdfgen_merge_duration_seconds`. The PDF is downloaded through the gateway and checked
with pypdf: the page count (the page tree's nodes counted; every page object read too up to
20,000 pages) and "Page 1 of N" / "Page N of N" on the first and last pages. The baseline
(`render_one_process`: every page in one reportlab canvas) renders the same rows with the same
title and timestamp in a process of its own after the pool has stopped; its wall time is the
render's, its peak RSS from `getrusage`. RSS counts pages a forked child shares with the pool's
main process (~90 MiB of imports) in full. Report rows, chunks, jobs and files are removed
after the run.
"""


def _machine_lines(machine: dict[str, Any]) -> list[str]:
    return [
        f"- CPU: {machine['cpu_model']}, {machine['cores']} cores; RAM {machine['ram_gib']} GiB; "
        f"{machine['os']}",
        f"- Python {machine['python']}; RabbitMQ {machine['rabbitmq']}; "
        f"PostgreSQL {machine['postgres']}; Redis {machine['redis']}",
        f"- load average when the run started: {machine['load_avg_at_start']}",
    ]


def render_docs(results: Path = RESULTS, docs: Path = DOCS) -> Path:
    """docs/benchmarks.md from the latest results, keeping the hand-written notes."""
    kept = ""
    if docs.exists():
        text = docs.read_text()
        if KEEP_MARKER in text:
            kept = text.split(KEEP_MARKER, 1)[1]
    lines = [METHOD]
    for name, title, table, verdict in (
        ("gateway", "Gateway: confirmed jobs/s and latency", gateway_table, gateway_verdict),
        ("analyzer", "Analyzer: blogs/s with 100 ms per page", analyzer_table, analyzer_verdict),
        ("devices", "Device import: 1,000,000 tokens", devices_table, devices_verdict),
        ("pusher", "Push campaign against the FCM sandbox", pusher_table, pusher_verdict),
        (
            "pdfgen",
            "PDF reports: 10,000 pages, every process's memory",
            pdfgen_table,
            pdfgen_verdict,
        ),
    ):
        path = results / f"{name}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        lines += [
            f"## {title}",
            "",
            f"Run {data['started_at']} ({'quick' if data['quick'] else 'full'} mode, "
            f"{data['elapsed_s']:.0f} s), on:",
            "",
            *_machine_lines(data["machine"]),
            "",
            *table(data["result"]),
            "",
        ]
        if name == "gateway":
            lines += [*ceiling_lines(data["result"]), ""]
        if name == "pusher":
            lines += [*pusher_lines(data["result"]), ""]
        if name == "pdfgen":
            lines += [*pdfgen_lines(data["result"]), ""]
        lines += ["Against the targets:", "", *verdict(data["result"]), ""]
    docs.parent.mkdir(parents=True, exist_ok=True)
    docs.write_text("\n".join(lines) + "\n" + KEEP_MARKER + (kept or "\n"))
    return docs
