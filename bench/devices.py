"""Device import benchmark: 1,000,000 tokens through `POST /v1/devices/import` of a real gateway.

The NDJSON body is generated on the fly and streamed (chunked upload), never held in memory,
by this process; the gateway parses it as it arrives and upserts it in batches (COPY into a
temporary table, INSERT … ON CONFLICT). Timed from the first byte sent to the summary received,
then checked against the database. A second pass imports the same fleet with new user ids
(every row an update). The gateway's RSS is sampled every 20 ms throughout.
"""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg

from bench import servers
from tests.support import environment
from tests.support.processes import start_gateway

PLATFORMS = ("android", "ios", "web")
TARGET_S = 60.0


@dataclass(frozen=True)
class Plan:
    """How many devices, in which upload chunks, and whether to time a re-import."""

    devices: int = 1_000_000
    rows_per_chunk: int = 1_000
    reimport: bool = True
    timeout_s: float = 600.0


FULL = Plan()
QUICK = Plan(devices=200_000)
TINY = Plan(devices=5_000, reimport=False, timeout_s=60.0)


def fleet(devices: int, rows_per_chunk: int, user_prefix: str) -> Iterator[bytes]:
    """NDJSON lines shaped like real FCM registrations (~190 bytes), a chunk at a time."""
    pad = "x" * 140
    for start in range(0, devices, rows_per_chunk):
        stop = min(start + rows_per_chunk, devices)
        yield "".join(
            f'{{"token": "fcm{i:09d}:APA91b{pad}", "platform": "{PLATFORMS[i % 3]}", '
            f'"user_id": "{user_prefix}{i % 250_000}", "topics": ["t{i % 10}"]}}\n'
            for i in range(start, stop)
        ).encode()


class RssSampler:
    """The peak resident memory of a process, sampled on a thread."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self._proc = psutil.Process(pid)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.start_rss = self._proc.memory_info().rss
        self.peak_rss = self.start_rss
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, self._proc.memory_info().rss)
            time.sleep(self._interval_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _truncate() -> None:
    with psycopg.connect(servers.DATABASE_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE devices")


def _device_count() -> int:
    with psycopg.connect(servers.DATABASE_URL) as conn:
        row = conn.execute("SELECT count(*) FROM devices").fetchone()
    return int(row[0]) if row else 0


def _import(base_url: str, plan: Plan, user_prefix: str, pid: int) -> dict[str, Any]:
    size = sum(len(chunk) for chunk in fleet(plan.devices, plan.rows_per_chunk, user_prefix))
    sampler = RssSampler(pid)
    started = time.perf_counter()
    try:
        response = httpx.post(
            f"{base_url}/v1/devices/import",
            content=fleet(plan.devices, plan.rows_per_chunk, user_prefix),
            headers={
                "Authorization": f"Bearer {environment.API_KEY}",
                "Content-Type": "application/x-ndjson",
            },
            timeout=plan.timeout_s,
        )
        elapsed = time.perf_counter() - started
    finally:
        sampler.stop()
    response.raise_for_status()
    summary = response.json()
    return {
        "devices": plan.devices,
        "body_mib": round(size / 2**20, 1),
        "elapsed_s": round(elapsed, 2),
        "rows_per_s": round(plan.devices / elapsed),
        "summary": {k: v for k, v in summary.items() if k != "errors"},
        "gateway_rss_start_mib": round(sampler.start_rss / 2**20, 1),
        "gateway_rss_peak_mib": round(sampler.peak_rss / 2**20, 1),
        "rows_in_table": _device_count(),
    }


def run(plan: Plan, log_dir: Path) -> dict[str, Any]:
    """A fresh import of `plan.devices` tokens, then (optionally) the same fleet updated."""
    servers.prepare()
    _truncate()
    gateway, base_url = start_gateway(log_dir, OFFLOAD_LOG_LEVEL="WARNING", **servers.urls())
    try:
        runs = [{"pass": "insert", **_import(base_url, plan, "u", gateway.pid)}]
        if plan.reimport:
            runs.append({"pass": "update", **_import(base_url, plan, "v", gateway.pid)})
    finally:
        gateway.stop()
        _truncate()
    for r in runs:
        expected = {"inserted": plan.devices, "updated": 0}
        if r["pass"] == "update":
            expected = {"inserted": 0, "updated": plan.devices}
        s = r["summary"]
        r["correct"] = (
            s["received"] == plan.devices
            and s["rejected"] == 0
            and {k: s[k] for k in expected} == expected
            and r["rows_in_table"] == plan.devices
        )
    return {"plan": asdict(plan), "target_s": TARGET_S, "runs": runs}


if __name__ == "__main__":
    print(json.dumps(run(QUICK, Path("/tmp")), indent=2))
