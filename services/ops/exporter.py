"""The state exporter: how much work is in progress and how long since it last moved forward.

`python -m services.ops.exporter` serves Prometheus metrics computed from Postgres on each
scrape (one process for the whole platform). An item is in progress while its own status says
it is being worked on and its job is queued or running: a campaign `processing`; a report
`queued`, `rendering` or `merging`. Items whose job failed or was cancelled are left out: no
worker will touch them again until someone redrives or resubmits them (failed jobs and dead
letters have their own signals). An item last progressed at its `progressed_at` (migration
0005); a sent campaign no worker has touched yet, at its job's creation.

A scrape never hangs on the database: Postgres cancels a statement after
OFFLOAD_EXPORTER_DB_TIMEOUT_S, connecting gives up after as long, and a read with no answer a
second later (a silent network) has its socket shut. A failed read leaves the gauges out of
that scrape, counts an error and keeps the last success time: no stale numbers pass for fresh.
"""

import contextlib
import logging
import math
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

import psycopg
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow
from pydantic import Field

from services.common import logs
from services.common.config import ServiceSettings
from services.common.launch import init_sentry

log = logging.getLogger("services.ops.exporter")  # not __main__ under `python -m`

# One round trip, one row per kind; every input is an index scan (campaigns_status,
# reports_in_progress, the jobs primary key), one row per item in progress.
QUERY = """
SELECT 'campaign', count(*), greatest(0, coalesce(
           extract(epoch FROM now() - min(coalesce(c.progressed_at, j.created_at))), 0))
FROM campaigns c JOIN jobs j ON j.id = c.job_id
WHERE c.status = 'processing' AND j.status IN ('queued', 'running')
UNION ALL
SELECT 'report', count(*), greatest(0, coalesce(
           extract(epoch FROM now() - min(r.progressed_at)), 0))
FROM reports r JOIN jobs j ON j.id = r.job_id
WHERE r.status IN ('queued', 'rendering', 'merging') AND j.status IN ('queued', 'running')
"""


class ExporterSettings(ServiceSettings):
    """The shared settings, with the exporter's port and its patience with Postgres."""

    metrics_port: int = 9100
    # Connect timeout and statement timeout of each scrape's read (libpq waits at least 2 s to
    # connect); a read still unanswered a second after the statement timeout is cut.
    exporter_db_timeout_s: float = Field(default=2.0, gt=0)


@dataclass(frozen=True)
class Progress:
    """What one scrape read for one kind of work."""

    kind: str
    in_progress: int
    oldest_age_s: float


class StateCollector(Collector):
    """Reads Postgres on every scrape, over one connection it reopens after any failure."""

    def __init__(self, database_url: str, timeout_s: float) -> None:
        options = conninfo_to_dict(database_url).get("options") or ""
        self._conninfo = make_conninfo(
            database_url,
            connect_timeout=max(2, math.ceil(timeout_s)),
            options=f"{options} -c statement_timeout={math.ceil(timeout_s * 1000)}".strip(),
            application_name="offload-exporter",
        )
        self._cut_after_s = timeout_s + 1
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._lock = threading.Lock()  # the HTTP server scrapes from one thread per request
        self._last_success = 0.0
        self._errors = 0

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            try:
                read: list[Progress] | None = self._read()
            except psycopg.Error as exc:
                read = None
                self._errors += 1
                log.warning("reading progress from Postgres failed: %s", exc)
            else:
                self._last_success = time.time()
            last_success, errors = self._last_success, self._errors
        if read is not None:
            in_progress = GaugeMetricFamily(
                "offload_in_progress",
                "Campaigns sending and reports being built (their job queued or running)",
                labels=["kind"],
            )
            age = GaugeMetricFamily(
                "offload_oldest_progress_age_seconds",
                "Seconds since the in-progress item that progressed least recently last "
                "progressed; 0 when none is in progress",
                labels=["kind"],
            )
            for progress in read:
                in_progress.add_metric([progress.kind], progress.in_progress)
                age.add_metric([progress.kind], progress.oldest_age_s)
            yield in_progress
            yield age
        yield GaugeMetricFamily(
            "offload_exporter_last_success_timestamp_seconds",
            "Unix time of the exporter's last successful read of Postgres (0: none yet)",
            value=last_success,
        )
        yield CounterMetricFamily(
            "offload_exporter_errors",
            "Scrapes whose read of Postgres failed (refused, timed out or cut off)",
            value=errors,
        )

    def _read(self) -> list[Progress]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, autocommit=True)
        conn, cut = self._conn, threading.Event()
        watchdog = threading.Timer(self._cut_after_s, _shut_socket, args=(conn, cut))
        watchdog.daemon = True
        watchdog.start()
        try:
            rows = conn.execute(QUERY).fetchall()
        except psycopg.Error:
            self.close()
            raise
        finally:
            watchdog.cancel()
            watchdog.join()
        if cut.is_set():  # the answer came as the socket was being shut
            self.close()
        return [Progress(str(kind), int(n), float(age)) for kind, n, age in rows]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _shut_socket(conn: psycopg.Connection[TupleRow], cut: threading.Event) -> None:
    """Wake a read blocked on a silent connection: it fails at once with a connection error."""
    cut.set()
    log.warning("no answer from Postgres in time; shutting the connection")
    with (
        contextlib.suppress(OSError, psycopg.Error),
        socket.socket(fileno=os.dup(conn.fileno())) as sock,
    ):
        sock.shutdown(socket.SHUT_RDWR)


def registry(collector: StateCollector) -> CollectorRegistry:
    """The exporter's own metrics plus the usual process metrics (its memory, CPU, fds)."""
    collected = CollectorRegistry()
    for each in (collector, PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        collected.register(each)
    return collected


def main() -> None:
    settings = ExporterSettings()
    logs.configure("exporter", settings.log_level, settings.log_json)
    init_sentry(settings, "exporter")
    collector = StateCollector(settings.database_url, settings.exporter_db_timeout_s)
    server, _ = start_http_server(
        settings.metrics_port, addr=settings.metrics_bind, registry=registry(collector)
    )
    log.info("exporter metrics on %s:%d", settings.metrics_bind, settings.metrics_port)
    stop = threading.Event()

    def _stop(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    stop.wait()
    server.shutdown()
    server.server_close()
    collector.close()
    log.info("exporter stopped")


if __name__ == "__main__":
    main()
