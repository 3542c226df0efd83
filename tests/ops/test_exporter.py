"""The state exporter as a real process over the real Postgres: what is in progress, how long
since it last moved forward, and a scrape that answers whatever the database does.

Campaigns and reports are built with the stores the workers use (services/common/store/campaigns.py,
services/common/store/reports.py); `rewind` moves an item's recorded history into the past, as if
every step had happened `seconds` earlier.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from services.common import jobs
from services.common.jobs import INSERT_JOB, START_JOB
from services.common.store import campaigns, reports
from services.ops.exporter import QUERY
from tests.support import environment
from tests.support.processes import Service, free_port, http_ok, start_process
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.integration

DB_TIMEOUT_S = 1.0
# Timestamps are set in SQL a moment before the scrape reads them.
SLACK_S = 2.0
STALE_S = 300.0


@dataclass
class Scrape:
    status: int
    elapsed_s: float
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]

    def value(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def campaigns(self) -> tuple[float | None, float | None]:
        """(in progress, oldest progress age) for campaigns."""
        return self._kind("campaign")

    def reports(self) -> tuple[float | None, float | None]:
        return self._kind("report")

    def age(self, kind: str) -> float | None:
        return self.value("offload_oldest_progress_age_seconds", kind=kind)

    def _kind(self, kind: str) -> tuple[float | None, float | None]:
        return self.value("offload_in_progress", kind=kind), self.age(kind)

    @property
    def errors(self) -> float | None:
        return self.value("offload_exporter_errors_total")

    @property
    def last_success(self) -> float | None:
        return self.value("offload_exporter_last_success_timestamp_seconds")


@dataclass
class Exporter:
    service: Service
    url: str

    def scrape(self) -> Scrape:
        assert self.service.process.poll() is None, f"exporter exited:\n{self.service.log()}"
        started = time.monotonic()
        response = httpx.get(self.url, timeout=30)
        elapsed = time.monotonic() - started
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }
        return Scrape(response.status_code, elapsed, samples)


def start_exporter(log_dir: Path, database_url: str | None = None) -> Exporter:
    """`python -m services.ops.exporter` on a free port, once it answers."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    service = start_process(
        f"exporter-{port}",
        ["-m", "services.ops.exporter"],
        environment.service_env(
            OFFLOAD_DATABASE_URL=database_url or environment.DATABASE_URL,
            OFFLOAD_METRICS_PORT=str(port),
            OFFLOAD_METRICS_BIND="127.0.0.1",
            OFFLOAD_EXPORTER_DB_TIMEOUT_S=str(DB_TIMEOUT_S),
        ),
        log_dir,
        ready=http_ok(url, timeout=5),
        timeout=20,
        what="the exporter to answer",
    )
    return Exporter(service, url)


@pytest.fixture(scope="module")
def exporter(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    running = start_exporter(tmp_path_factory.mktemp("logs"))
    with running.service:
        yield running


@pytest.fixture
def db(clean: None) -> Iterator[psycopg.Connection[Any]]:
    """A connection like the workers' (autocommit) on the emptied test database."""
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        yield conn


# --- items in the states the app leaves them in -------------------------------------------


def new_job(conn: psycopg.Connection[Any], kind: str, status: str = "running") -> UUID:
    job_id = uuid4()
    conn.execute(INSERT_JOB, (job_id, kind, Jsonb({}), 5, None))
    if status == "running":
        conn.execute(START_JOB, (job_id,))
    elif status != "queued":
        jobs.finish(conn, job_id, status)
    return job_id


def new_campaign(
    conn: psycopg.Connection[Any],
    status: str,
    job_status: str | None = "running",
    send_at_s: float | None = None,
) -> UUID:
    """A campaign as the gateway leaves it: created, then sent (status and job) unless a draft."""
    campaign_id = uuid4()
    job_id = new_job(conn, "campaign", job_status) if job_status else None
    conn.execute(
        "INSERT INTO campaigns (id, title, body, priority, target, status, job_id, send_at) "
        "VALUES (%s, 'Hello', 'A message', 'normal', %s, %s, %s, "
        "now() + make_interval(secs => %s))",
        (campaign_id, Jsonb({"all": True}), status, job_id, send_at_s),
    )
    return campaign_id


def sending_campaign(conn: psycopg.Connection[Any], batches: int = 2) -> UUID:
    """A processing campaign whose fan-out planned `batches` batches of 500 devices."""
    campaign_id = new_campaign(conn, "processing")
    campaigns.mark_started(conn, campaign_id)
    for n in range(batches):
        campaigns.record_batch(conn, campaign_id, n, n * 500, (n + 1) * 500, 500)
    return campaign_id


def settle(conn: psycopg.Connection[Any], campaign_id: UUID, batch_no: int) -> bool:
    return campaigns.settle_batch(conn, campaign_id, batch_no, job_of(conn, campaign_id))


def new_report(
    conn: psycopg.Connection[Any], job_status: str = "running", chunks: int | None = None
) -> UUID:
    """A report as the gateway records it; planned into `chunks` chunks when given."""
    report_id = uuid4()
    job_id = new_job(conn, "report", job_status)
    conn.execute(
        "INSERT INTO reports (id, job_id, title, columns, group_by, upload_id, owns_upload) "
        "VALUES (%s, %s, 'Sales', %s, NULL, 'upload-1', false)",
        (report_id, job_id, Jsonb([{"key": "id", "label": "ID"}])),
    )
    if chunks is not None:
        reports.store_plan(conn, report_id, {"chunks": chunks}, chunks * 20, chunks)
    return report_id


def render(conn: psycopg.Connection[Any], report_id: UUID, chunk_no: int) -> tuple[int, int]:
    return reports.chunk_done(
        conn, report_id, chunk_no, pages=20, size=40_000, render_s=0.5, peak_rss=50_000_000
    )


def job_of(conn: psycopg.Connection[Any], item_id: UUID) -> UUID:
    row = conn.execute(
        "SELECT job_id FROM campaigns WHERE id = %(id)s "
        "UNION ALL SELECT job_id FROM reports WHERE id = %(id)s",
        {"id": item_id},
    ).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def rewind(conn: psycopg.Connection[Any], item_id: UUID, seconds: float) -> None:
    """Move every recorded time of a campaign or report (and its job) `seconds` back."""
    back = {"id": item_id, "s": seconds}
    for statement in (
        "UPDATE campaigns SET created_at = created_at - make_interval(secs => %(s)s), "
        "started_at = started_at - make_interval(secs => %(s)s), "
        "progressed_at = progressed_at - make_interval(secs => %(s)s) WHERE id = %(id)s",
        "UPDATE campaign_batches SET settled_at = settled_at - make_interval(secs => %(s)s) "
        "WHERE campaign_id = %(id)s",
        "UPDATE reports SET created_at = created_at - make_interval(secs => %(s)s), "
        "progressed_at = progressed_at - make_interval(secs => %(s)s) WHERE id = %(id)s",
    ):
        conn.execute(statement, back)
    conn.execute(
        "UPDATE jobs SET created_at = created_at - make_interval(secs => %(s)s), "
        "started_at = started_at - make_interval(secs => %(s)s), "
        "heartbeat_at = heartbeat_at - make_interval(secs => %(s)s) WHERE id IN ("
        "SELECT job_id FROM campaigns WHERE id = %(id)s "
        "UNION ALL SELECT job_id FROM reports WHERE id = %(id)s)",
        back,
    )


def assert_age(age: float | None, seconds: float) -> None:
    assert age is not None
    assert seconds <= age < seconds + SLACK_S, f"age {age} s, expected {seconds} s"


def progressed(
    exporter: Exporter,
    db: psycopg.Connection[Any],
    kind: str,
    item_id: UUID,
    step: Callable[[], object],
) -> bool:
    """Make the item STALE_S old, run `step`: did it reset the oldest progress age?"""
    rewind(db, item_id, STALE_S)
    before = exporter.scrape().age(kind)
    assert before is not None and before >= STALE_S
    step()
    after = exporter.scrape().age(kind)
    assert after is not None
    if after < SLACK_S:
        return True
    assert before <= after < before + SLACK_S, f"age {before} s became {after} s"
    return False


# --- what is in progress, and since when ---------------------------------------------------


def test_nothing_in_progress_is_zero(exporter: Exporter, db: psycopg.Connection[Any]) -> None:
    before = exporter.scrape()
    assert before.status == 200
    assert before.campaigns() == (0, 0)
    assert before.reports() == (0, 0)

    # Not in progress: never sent, waiting for its time, finished, or whose job no worker
    # will run again (a dead-lettered batch fails the job; a job cancelled through its API).
    new_campaign(db, "draft", job_status=None)
    new_campaign(db, "scheduled", job_status="queued", send_at_s=3600)
    new_campaign(db, "completed", job_status="succeeded")
    new_campaign(db, "cancelled", job_status="cancelled")
    new_campaign(db, "processing", job_status="failed")
    new_campaign(db, "processing", job_status="cancelled")
    ready = new_report(db, job_status="succeeded", chunks=1)
    render(db, ready, 0)
    assert reports.start_merge(db, ready)
    assert reports.mark_ready(db, ready, key="k", size=1, pages=20, ttl_s=3600)
    new_report(db, job_status="failed", chunks=3)  # a business failure: final
    new_report(db, job_status="cancelled")
    for item in db.execute("SELECT id FROM campaigns UNION ALL SELECT id FROM reports"):
        rewind(db, item[0], 1000)

    after = exporter.scrape()
    assert after.campaigns() == (0, 0)
    assert after.reports() == (0, 0)
    assert after.errors == before.errors
    assert after.last_success is not None
    assert time.time() - SLACK_S < after.last_success <= time.time()


def test_the_campaign_that_progressed_least_recently_sets_the_age(
    exporter: Exporter, db: psycopg.Connection[Any]
) -> None:
    settled_long_ago = sending_campaign(db)
    assert not settle(db, settled_long_ago, 0)
    rewind(db, settled_long_ago, 120)
    # Sent 30 s ago and not touched by a worker yet: its clock starts when it was sent.
    waiting = new_campaign(db, "processing", job_status="queued")
    rewind(db, waiting, 30)
    busy = sending_campaign(db)
    rewind(db, busy, 5)

    scrape = exporter.scrape()
    assert scrape.campaigns()[0] == 3
    assert_age(scrape.campaigns()[1], 120)
    # The batch's settlement and the campaign's progress are one transaction's now().
    assert db.execute(
        "SELECT c.progressed_at = b.settled_at FROM campaigns c JOIN campaign_batches b "
        "ON b.campaign_id = c.id AND b.batch_no = 0 WHERE c.id = %s",
        (settled_long_ago,),
    ).fetchone() == (True,)

    assert settle(db, settled_long_ago, 1) is False  # fan-out not finished: not complete
    assert_age(exporter.scrape().campaigns()[1], 30)
    campaigns.mark_started(db, waiting)  # its fan-out began
    scrape = exporter.scrape()
    assert scrape.campaigns()[0] == 3
    assert_age(scrape.campaigns()[1], 5)


def test_a_stalled_report_sets_the_age(exporter: Exporter, db: psycopg.Connection[Any]) -> None:
    queued = new_report(db, job_status="queued")
    rewind(db, queued, 50)
    stalled = new_report(db, chunks=3)
    render(db, stalled, 0)
    rewind(db, stalled, 400)
    merging = new_report(db, chunks=1)
    render(db, merging, 0)
    assert reports.start_merge(db, merging)
    rewind(db, merging, 10)
    failed = new_report(db, job_status="failed", chunks=2)
    rewind(db, failed, 1000)

    scrape = exporter.scrape()
    assert scrape.reports()[0] == 3
    assert_age(scrape.reports()[1], 400)
    assert scrape.campaigns() == (0, 0)

    assert render(db, stalled, 1) == (2, 3)
    assert_age(exporter.scrape().reports()[1], 50)


def test_each_campaign_step_is_progress_and_a_redelivery_is_not(
    exporter: Exporter, db: psycopg.Connection[Any]
) -> None:
    campaign_id = new_campaign(db, "scheduled", job_status="queued", send_at_s=-1)
    rewind(db, campaign_id, STALE_S)
    assert exporter.scrape().campaigns() == (0, 0)  # waiting for its time is not in progress

    # Dispatch (beat) or the fan-out claims it: its clock starts then, not when it was sent.
    campaigns.claim_due(db, campaign_id)
    scrape = exporter.scrape()
    assert scrape.campaigns()[0] == 1
    assert_age(scrape.campaigns()[1], 0)
    db.execute(START_JOB, (job_of(db, campaign_id),))

    moves = partial(progressed, exporter, db, "campaign", campaign_id)
    assert moves(partial(campaigns.mark_started, db, campaign_id))
    assert moves(partial(campaigns.record_batch, db, campaign_id, 0, 0, 500, 500))
    assert moves(partial(campaigns.record_batch, db, campaign_id, 1, 500, 900, 400))
    # Redeliveries change nothing, so they are not progress.
    assert not moves(partial(campaigns.record_batch, db, campaign_id, 1, 500, 900, 400))
    assert moves(partial(settle, db, campaign_id, 0))
    assert not moves(partial(settle, db, campaign_id, 0))
    assert moves(partial(settle, db, campaign_id, 1))

    assert campaigns.finish_fanout(db, campaign_id, job_of(db, campaign_id))
    assert exporter.scrape().campaigns() == (0, 0)


def test_each_report_step_is_progress_and_a_redelivery_is_not(
    exporter: Exporter, db: psycopg.Connection[Any]
) -> None:
    report_id = new_report(db, job_status="queued")
    rewind(db, report_id, STALE_S)
    scrape = exporter.scrape()
    assert scrape.reports()[0] == 1  # waiting for a worker is in progress (a backlog stalls)
    assert_age(scrape.reports()[1], STALE_S)
    db.execute(START_JOB, (job_of(db, report_id),))

    moves = partial(progressed, exporter, db, "report", report_id)
    assert moves(partial(reports.store_plan, db, report_id, {}, 40, 2))
    assert not moves(partial(reports.store_plan, db, report_id, {}, 40, 2))
    assert moves(partial(render, db, report_id, 0))
    assert not moves(partial(render, db, report_id, 0))
    assert moves(partial(render, db, report_id, 1))
    assert moves(partial(reports.start_merge, db, report_id))

    assert reports.mark_ready(db, report_id, key="k", size=1, pages=40, ttl_s=60)
    assert exporter.scrape().reports() == (0, 0)


def test_the_queries_are_index_scans(db: psycopg.Connection[Any]) -> None:
    """With sequential scans priced out, the plan must still exist: every input is indexed."""
    db.execute("SET enable_seqscan = off")
    plan = "\n".join(row[0] for row in db.execute(f"EXPLAIN {QUERY}"))
    assert "Seq Scan" not in plan, plan
    assert "campaigns_status" in plan, plan
    assert "reports_in_progress" in plan, plan


# --- a database that fails, hangs or goes silent -------------------------------------------


@pytest.fixture
def proxied(platform: None, tmp_path: Path) -> Iterator[tuple[Exporter, TcpProxy]]:
    """An exporter whose Postgres is behind a TCP proxy the test can cut or silence."""
    params = conninfo_to_dict(environment.DATABASE_URL)
    with TcpProxy(int(params.get("port") or 5432), str(params.get("host") or "127.0.0.1")) as proxy:
        url = make_conninfo(environment.DATABASE_URL, host="127.0.0.1", port=proxy.port)
        exporter = start_exporter(tmp_path, url)
        with exporter.service:
            yield exporter, proxy


def test_a_database_outage_is_counted_and_the_last_success_stays(
    proxied: tuple[Exporter, TcpProxy], db: psycopg.Connection[Any]
) -> None:
    exporter, proxy = proxied
    campaign_id = sending_campaign(db)
    rewind(db, campaign_id, 60)
    healthy = exporter.scrape()
    assert healthy.errors == 0
    assert healthy.campaigns()[0] == 1

    proxy.stop()  # drops the exporter's connection and refuses new ones
    for expected_errors in (1, 2):
        down = exporter.scrape()
        assert down.status == 200
        assert down.elapsed_s < DB_TIMEOUT_S + 1
        assert down.errors == expected_errors
        assert down.last_success == healthy.last_success
        # No stale numbers passed off as fresh: the gauges are left out until a read succeeds.
        assert down.campaigns() == (None, None)
        assert down.reports() == (None, None)

    proxy.start()
    back = exporter.scrape()
    assert back.errors == 2
    assert back.last_success is not None and healthy.last_success is not None
    assert back.last_success > healthy.last_success
    assert back.campaigns()[0] == 1
    assert_age(back.campaigns()[1], 60)


def test_a_silent_database_does_not_hang_a_scrape(
    proxied: tuple[Exporter, TcpProxy], db: psycopg.Connection[Any]
) -> None:
    exporter, proxy = proxied
    healthy = exporter.scrape()
    assert healthy.errors == 0

    proxy.pause()  # connections stay open, nothing gets through: no error, no answer
    try:
        # The open connection's read is cut a second after the statement timeout; the next
        # scrape's new connection gives up after the connect timeout (libpq's minimum, 2 s).
        for expected_errors, limit_s in ((1, DB_TIMEOUT_S + 1), (2, 2.0)):
            silent = exporter.scrape()
            assert silent.status == 200
            assert silent.elapsed_s < limit_s + SLACK_S
            assert silent.errors == expected_errors
            assert silent.last_success == healthy.last_success
    finally:
        proxy.resume()

    back = exporter.scrape()
    assert back.errors == 2
    assert back.campaigns() == (0, 0)
    assert "no answer from Postgres" in exporter.service.log()


def test_a_slow_database_is_cut_off_by_the_statement_timeout(
    exporter: Exporter, db: psycopg.Connection[Any]
) -> None:
    before = exporter.scrape()
    with psycopg.connect(environment.DATABASE_URL) as locker:
        locker.execute("LOCK TABLE reports IN ACCESS EXCLUSIVE MODE")  # the read must wait
        slow = exporter.scrape()
        locker.rollback()
    assert slow.status == 200
    assert DB_TIMEOUT_S <= slow.elapsed_s < DB_TIMEOUT_S + 1
    assert slow.errors == (before.errors or 0) + 1
    assert slow.last_success == before.last_success
    assert "statement timeout" in exporter.service.log()

    after = exporter.scrape()
    assert after.errors == slow.errors
    assert after.reports() == (0, 0)
