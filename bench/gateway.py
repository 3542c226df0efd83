"""Gateway benchmark: broker-confirmed jobs/s and latency of `POST /v1/analyses`.

For each worker count, the gateway and the Celery `delay()` baseline (bench/baseline_app.py)
take the same two loads from the load generator (bench/loadgen.py, its own process): an open
loop at a fixed offered rate, and a closed loop of back-to-back clients for their maximum.
Every request names a distinct blog, so the gateway's cache and single-flight paths never
answer for it; nothing consumes the queue. After each run the queue depth (and, for the
gateway, the job rows) must equal the accepted count; then queue, tables and Redis are reset.
"""

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bench import servers
from tests.support import environment
from tests.support.processes import (
    ROOT,
    Service,
    free_port,
    http_ok,
    start_gateway,
    start_process,
)

BODY = '{"blog_url":"https://b{i}.r{run}.bench.example/"}'


@dataclass(frozen=True)
class Plan:
    """How hard and how long to push."""

    workers: tuple[int, ...] = (1, 2)
    rate: float = 1000.0
    duration_s: float = 10.0
    warmup_s: float = 1.0
    # Enough connections that a stalled server shows up as latency, not as a stalled client.
    open_connections: int = 256
    closed_connections: int = 64
    ceiling: bool = True


FULL = Plan()
QUICK = Plan(duration_s=3.0, warmup_s=0.5)
TINY = Plan(
    workers=(1,), rate=40.0, duration_s=0.5, warmup_s=0.1, closed_connections=2, ceiling=False
)


def loadgen(
    url: str,
    *,
    duration_s: float,
    warmup_s: float,
    connections: int,
    rate: float = 0.0,
    body: str = BODY,
    api_key: str | None = None,
) -> dict[str, Any]:
    """Run bench.loadgen in its own process and return its result."""
    args = [
        sys.executable,
        "-m",
        "bench.loadgen",
        url,
        "--body",
        body,
        "--duration",
        str(duration_s),
        "--warmup",
        str(warmup_s),
        "--connections",
        str(connections),
        "--rate",
        str(rate),
    ]
    if api_key:
        args += ["--header", f"Authorization: Bearer {api_key}"]
    done = subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=duration_s + warmup_s + 60
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def start_baseline(log_dir: Path, workers: int) -> tuple[Service, str]:
    """The Celery `delay()` baseline under uvicorn with `workers` processes."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    service = start_process(
        f"baseline-w{workers}",
        [
            "-m",
            "uvicorn",
            "bench.baseline_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        servers.service_env(),
        log_dir,
        ready=http_ok(f"{base}/healthz"),
        timeout=30,
        what="the baseline app to be ready",
    )
    return service, base


def _busy_cpu_s() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


def _measure(
    service: Service,
    target: str,
    workers: int,
    mode: str,
    url: str,
    plan: Plan,
    api_key: str | None,
) -> dict[str, Any]:
    servers.reset()
    server_cpu0, busy0 = service.cpu_seconds(), _busy_cpu_s()
    if mode == "open":
        result = loadgen(
            url,
            rate=plan.rate,
            duration_s=plan.duration_s,
            warmup_s=plan.warmup_s,
            connections=plan.open_connections,
            api_key=api_key,
        )
    else:
        result = loadgen(
            url,
            duration_s=plan.duration_s,
            warmup_s=plan.warmup_s,
            connections=plan.closed_connections,
            api_key=api_key,
        )
    server_cpu, busy = service.cpu_seconds() - server_cpu0, _busy_cpu_s() - busy0
    accepted_total = result["accepted"] + result["warmup_accepted"]
    queued = servers.queue_depth()
    rows = servers.job_rows() if target == "gateway" else None
    sent = result["sent"] + result["warmup_sent"]
    result.update(
        target=target,
        workers=workers,
        accepted_total=accepted_total,
        queued=queued,
        job_rows=rows,
        consistent=queued == accepted_total and rows in (None, accepted_total),
        server_cpu_s=round(server_cpu, 2),
        server_cpu_us_per_request=round(server_cpu / max(sent, 1) * 1e6, 1),
        machine_busy_cpu_s=round(busy, 2),
        # What the broker, Postgres and Redis (and the OS) used beside server and client.
        other_cpu_s=round(max(busy - server_cpu - result["cpu_s"], 0.0), 2),
    )
    servers.reset()
    return result


def _run_target(target: str, workers: int, plan: Plan, log_dir: Path) -> list[dict[str, Any]]:
    if target == "gateway":
        service, base = start_gateway(
            log_dir, OFFLOAD_GATEWAY_WORKERS=str(workers), **servers.urls()
        )
        api_key: str | None = environment.API_KEY
    else:
        service, base = start_baseline(log_dir, workers)
        api_key = None
    try:
        if workers > 1:
            time.sleep(1.0)  # every uvicorn worker through its lifespan, not just the first
        return [
            _measure(service, target, workers, mode, f"{base}/v1/analyses", plan, api_key)
            for mode in ("open", "closed")
        ]
    finally:
        service.stop()


def _ceiling(plan: Plan, log_dir: Path) -> dict[str, Any]:
    """The load generator against a route that does nothing: its own limit on this machine."""
    service, base = start_baseline(log_dir, 1)
    try:
        closed = loadgen(
            f"{base}/noop",
            duration_s=plan.duration_s,
            warmup_s=plan.warmup_s,
            connections=plan.closed_connections,
        )
        opened = loadgen(
            f"{base}/noop",
            rate=plan.rate,
            duration_s=plan.duration_s,
            warmup_s=plan.warmup_s,
            connections=plan.open_connections,
        )
    finally:
        service.stop()
    return {"closed": closed, "open": opened}


def run(plan: Plan, log_dir: Path) -> dict[str, Any]:
    """Every target at every worker count, baseline first; the results as one dict."""
    servers.prepare()
    runs: list[dict[str, Any]] = []
    for workers in plan.workers:
        for target in ("baseline", "gateway"):
            runs.extend(_run_target(target, workers, plan, log_dir))
    return {
        "plan": asdict(plan),
        "ceiling": _ceiling(plan, log_dir) if plan.ceiling else None,
        "runs": runs,
    }
