"""Analyzer benchmark: blogs scored per second with 100 ms of latency on every page.

N WordPress-style blogs (30 scored posts each) are served by one BlogServer on loopback and
submitted through a real gateway to a real analyzer pool; the clock runs from the first
submission until every job has succeeded. The baseline crawls blogs in one process one page
after another, as the original did, with the analyzer's own crawler and scorer (per-host
concurrency 1), so both sides do the same parsing and scoring work.

Fairness: all blogs share one host (127.0.0.1:port), but `crawl_blog` keys its per-host
semaphore inside one crawl (`_crawl_posts` builds a fresh dict per call), so each task fetches
at most 4 post pages of its blog at a time and tasks do not share the cap: the same as N blogs
on N real hosts. The BlogServer answers every request on its own thread after sleeping
`latency_s`, so it never queues requests (its peak in-flight count is reported).
"""

import asyncio
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from psycopg.rows import dict_row

from bench import servers
from services.analyzer.config import AnalyzerSettings
from services.analyzer.crawler import crawl_blog
from services.analyzer.scoring import score_blog
from tests.support import environment
from tests.support.blogserver import BlogServer
from tests.support.processes import (
    Service,
    consumers_added,
    free_port,
    start_gateway,
    start_process,
)


@dataclass(frozen=True)
class Plan:
    """How many blogs, how much latency, which pool sizes."""

    blogs: int = 40
    latency_s: float = 0.1
    # One process per concurrent crawl (prefork): a crawl spends ~1.3 s mostly waiting on
    # 100 ms pages, so 20 blogs/s needs ~26 crawls at once if CPU allows; 8 and 16 show the
    # scaling, 32 where it stops.
    concurrency: tuple[int, ...] = (8, 16, 32)
    baseline_blogs: int = 3
    timeout_s: float = 180.0


FULL = Plan()
QUICK = Plan(blogs=16, concurrency=(8, 16), baseline_blogs=2)
TINY = Plan(blogs=2, latency_s=0.01, concurrency=(2,), baseline_blogs=1, timeout_s=45.0)


def start_worker(log_dir: Path, concurrency: int) -> Service:
    """An analyzer pool on the bench servers, once it consumes its queue."""
    label = f"analyzer-c{concurrency}"
    ready = consumers_added("analyzer", servers.AMQP_URL)  # counted before the start
    return start_process(
        label,
        [
            "-m",
            "services.analyzer",
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{label}-{free_port()}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        servers.service_env(OFFLOAD_LOG_LEVEL="WARNING"),
        log_dir,
        ready=ready,
        timeout=60,
        what=f"{label} to consume the analyzer queue",
        step=0.2,
    )


def sequential_baseline(server: BlogServer, names: list[str]) -> dict[str, Any]:
    """Crawl and score blogs in this process, one page after another."""
    settings = AnalyzerSettings(crawl_allow_private=True, crawl_per_host_concurrency=1)
    started = time.perf_counter()
    hits0 = server.total_hits()
    correct = 0
    for name in names:
        snapshot = asyncio.run(crawl_blog(server.url(name), settings))
        result = score_blog(
            snapshot, settings.score_weights, settings.score_references, now=datetime.now(UTC)
        )
        correct += result["metrics"] == server.blog(name).expected_metrics()
    elapsed = time.perf_counter() - started
    return {
        "blogs": len(names),
        "correct": correct,
        "elapsed_s": round(elapsed, 3),
        "s_per_blog": round(elapsed / len(names), 3),
        "blogs_per_s": round(len(names) / elapsed, 3),
        "pages": server.total_hits() - hits0,
    }


def _submit(base_url: str, urls: list[str]) -> list[str]:
    headers = {"Authorization": f"Bearer {environment.API_KEY}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=10) as client:
        ids = []
        for url in urls:
            response = client.post("/v1/analyses", json={"blog_url": url})
            if response.status_code != 202:
                raise RuntimeError(f"submit {url}: {response.status_code} {response.text}")
            ids.append(response.json()["job_id"])
    return ids


def _wait(ids: list[str], timeout_s: float) -> list[dict[str, Any]]:
    """Poll the job table until every job is finished; the rows."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(servers.DATABASE_URL, autocommit=True) as conn:
        while True:
            rows = (
                conn.cursor(row_factory=dict_row)
                .execute(
                    "SELECT id::text, status, result, progress_done, error_code, created_at, "
                    "finished_at FROM jobs WHERE id = ANY(%s::uuid[])",
                    (ids,),
                )
                .fetchall()
            )
            if len(rows) == len(ids) and all(
                r["status"] in ("succeeded", "failed", "cancelled") for r in rows
            ):
                return rows
            if time.monotonic() > deadline:
                counts: dict[str, int] = {}
                for row in rows:
                    counts[row["status"]] = counts.get(row["status"], 0) + 1
                raise TimeoutError(f"jobs not finished after {timeout_s} s: {counts}")
            time.sleep(0.02)


def pipeline_run(
    server: BlogServer,
    base_url: str,
    names: list[str],
    warm: list[str],
    concurrency: int,
    plan: Plan,
    log_dir: Path,
) -> dict[str, Any]:
    """Submit every blog through the gateway to a pool of `concurrency`; time to all done."""
    servers.reset()
    worker = start_worker(log_dir, concurrency)
    try:
        # Every prefork child opens its DB pool and Redis client on its first task.
        _wait(_submit(base_url, [server.url(n) for n in warm]), plan.timeout_s)
        servers.reset()
        server.reset_stats()
        cpu0, busy0 = worker.cpu_seconds(), psutil.cpu_times()
        started = time.perf_counter()
        ids = _submit(base_url, [server.url(n) for n in names])
        rows = _wait(ids, plan.timeout_s)
        elapsed = time.perf_counter() - started
        cpu, busy1 = worker.cpu_seconds() - cpu0, psutil.cpu_times()
    finally:
        worker.stop()
    by_id = dict(zip(ids, names, strict=True))
    succeeded = [r for r in rows if r["status"] == "succeeded"]
    correct = sum(
        r["result"]["metrics"] == server.blog(by_id[r["id"]]).expected_metrics() for r in succeeded
    )
    db_span = (
        max(r["finished_at"] for r in rows) - min(r["created_at"] for r in rows)
    ).total_seconds()
    busy = (sum(busy1) - busy1.idle) - (sum(busy0) - busy0.idle)
    servers.reset()
    return {
        "concurrency": concurrency,
        "blogs": len(names),
        "succeeded": len(succeeded),
        "failed": len(rows) - len(succeeded),
        "correct": correct,
        "posts_crawled": sum(r["progress_done"] or 0 for r in succeeded),
        "elapsed_s": round(elapsed, 3),
        "db_span_s": round(db_span, 3),
        "blogs_per_s": round(len(names) / elapsed, 3),
        "pages": server.total_hits(),
        "server_max_in_flight": server.max_in_flight,
        "pool_cpu_s": round(cpu, 2),
        "pool_cpu_ms_per_blog": round(cpu / len(names) * 1000, 1),
        "machine_cpu_utilisation": round(busy / (elapsed * (psutil.cpu_count() or 1)), 3),
    }


def run(plan: Plan, log_dir: Path) -> dict[str, Any]:
    """The sequential baseline, then the pipeline at each pool size; the results as one dict."""
    servers.prepare()
    warm_count = max(plan.concurrency)
    with BlogServer(blogs=[], count=plan.blogs + warm_count, latency_s=plan.latency_s) as server:
        names = [f"wp{i}" for i in range(plan.blogs)]
        warm = [f"wp{i}" for i in range(plan.blogs, plan.blogs + warm_count)]
        baseline = sequential_baseline(server, names[: plan.baseline_blogs])
        gateway, base_url = start_gateway(log_dir, **servers.urls())
        try:
            runs = [
                pipeline_run(server, base_url, names, warm, c, plan, log_dir)
                for c in plan.concurrency
            ]
        finally:
            gateway.stop()
    return {"plan": asdict(plan), "baseline": baseline, "runs": runs}
