"""The report pipeline without a broker: plan, render, merge on the real Postgres and local
storage; what each step publishes next; no pooled connection held while files are made."""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import redis
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool, PoolTimeout
from pypdf import PdfReader

from services.common.contracts.reports import MergeReport, PlanReport, RenderChunk
from services.common.jobs import JobStore
from services.common.rowfiles import write_rows
from services.common.storage import LocalStorage
from services.common.store import reports
from services.common.worker.jobtask import JobCancelled, JobContext
from services.common.worker.resources import Resources
from services.pdfgen import pipeline
from services.pdfgen.errors import PdfgenError, ReportTooLarge
from services.pdfgen.layout import Column, layout_for
from services.pdfgen.planning import ReportPlan
from tests.support import environment

pytestmark = pytest.mark.integration

COLUMNS = [
    {"key": "id", "label": "ID", "width": 40, "align": None},
    {"key": "region", "label": "Region", "width": None, "align": None},
    {"key": "amount", "label": "Amount", "width": None, "align": None},
]
ROWS_PER_PAGE = layout_for([Column.from_dict(column) for column in COLUMNS]).rows_per_page
PAGES_PER_CHUNK = 2
TTL_S = 3600

Message = RenderChunk | MergeReport


class GuardedStorage(LocalStorage):
    """Local storage that fails any read or write made while the pool's one connection is out,
    and names each operation it checked."""

    def __init__(self, root: Path, pool: ConnectionPool) -> None:
        super().__init__(root)
        self.pool = pool
        self.checked: list[str] = []

    def check_pool_free(self, operation: str) -> None:
        try:
            with self.pool.connection(timeout=0.5):
                pass
        except PoolTimeout:
            pytest.fail(f"a pooled connection is held across {operation}")
        self.checked.append(operation)

    @contextmanager
    def open_reader(self, key: str, start: int = 0, end: int | None = None) -> Iterator[BinaryIO]:
        self.check_pool_free("open_reader")
        with super().open_reader(key, start, end) as stream:
            yield stream

    def put_file(self, key: str, path: Path) -> None:
        self.check_pool_free("put_file")
        super().put_file(key, path)

    def download(self, key: str, path: Path) -> None:
        self.check_pool_free("download")
        super().download(key, path)

    def delete_prefix(self, prefix: str) -> int:
        self.check_pool_free("delete_prefix")
        return super().delete_prefix(prefix)


@pytest.fixture
def pool(clean: None) -> Iterator[ConnectionPool]:
    # One connection: anything that keeps it checked out makes every other checkout wait.
    with ConnectionPool(
        environment.DATABASE_URL,
        min_size=1,
        max_size=1,
        timeout=5,
        kwargs={"autocommit": True},
        name="pdfgen-pipeline-test",
    ) as pool:
        yield pool


@pytest.fixture
def storage(tmp_path: Path, pool: ConnectionPool) -> GuardedStorage:
    return GuardedStorage(tmp_path / "storage", pool)


@pytest.fixture
def job(pool: ConnectionPool) -> JobContext:
    job_id = uuid.uuid4()
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO jobs (id, kind, status, payload) VALUES (%s, 'report', 'running', '{}')",
            (job_id,),
        )
    client = redis.Redis.from_url(environment.REDIS_URL)  # unused by progress, needed by Resources
    return JobContext(job_id, Resources(pool, client, JobStore(pool)), min_interval_s=0)


def add_report(
    pool: ConnectionPool,
    storage: GuardedStorage,
    job: JobContext,
    row_count: int,
    group_by: str | None = None,
) -> uuid.UUID:
    """A report as the gateway records it, its rows stored as an upload."""
    rows = [
        {"id": i + 1, "region": "North" if i < row_count // 2 else "South", "amount": i * 1.5}
        for i in range(row_count)
    ]
    upload_id = write_rows(storage, rows).upload_id
    report_id = uuid.uuid4()
    with pool.connection() as conn:
        conn.execute(
            "INSERT INTO reports (id, job_id, title, columns, group_by, upload_id, owns_upload) "
            "VALUES (%s, %s, 'Ledger', %s, %s, %s, true)",
            (report_id, job.job_id, Jsonb(COLUMNS), group_by, upload_id),
        )
    return report_id


def report_row(pool: ConnectionPool, report_id: uuid.UUID) -> dict[str, Any]:
    with pool.connection() as conn:
        report = reports.load(conn, report_id)
    assert report is not None
    return report


def job_progress(pool: ConnectionPool, job: JobContext) -> tuple[int, int]:
    with pool.connection() as conn:
        row = conn.execute(
            "SELECT progress_done, progress_total FROM jobs WHERE id = %s", (job.job_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def plan(
    pool: ConnectionPool,
    storage: GuardedStorage,
    job: JobContext,
    report_id: uuid.UUID,
    sent: list[Message] | None = None,
    **limits: int,
) -> list[Message]:
    sent = [] if sent is None else sent
    pipeline.plan(
        PlanReport(job_id=job.job_id, report_id=report_id),
        job,
        pool=pool,
        storage=storage,
        pages_per_chunk=PAGES_PER_CHUNK,
        publish=sent.append,
        **limits,
    )
    return sent


def render(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext, report_id: uuid.UUID, no: int
) -> list[Message]:
    sent: list[Message] = []
    pipeline.render(
        RenderChunk(job_id=job.job_id, report_id=report_id, chunk_no=no),
        job,
        pool=pool,
        storage=storage,
        publish=sent.append,
    )
    return sent


def merge(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext, report_id: uuid.UUID
) -> dict[str, Any]:
    request = MergeReport(job_id=job.job_id, report_id=report_id)
    return pipeline.merge(request, pool=pool, storage=storage, ttl_s=TTL_S)


def renders(job: JobContext, report_id: uuid.UUID, chunks: range) -> list[Message]:
    return [RenderChunk(job_id=job.job_id, report_id=report_id, chunk_no=no) for no in chunks]


def test_plan_render_every_chunk_and_merge_make_the_report(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext, tmp_path: Path
) -> None:
    # Two groups of 2.5 pages each: 3 pages apiece, 6 pages, 3 chunks of 2 pages.
    row_count = 5 * ROWS_PER_PAGE
    report_id = add_report(pool, storage, job, row_count, group_by="region")

    sent = plan(pool, storage, job, report_id)

    assert sent == renders(job, report_id, range(3))
    report = report_row(pool, report_id)
    assert (report["status"], report["pages"], report["chunks_total"]) == ("rendering", 6, 3)
    assert [(g.name, g.page_count) for g in ReportPlan.from_dict(report["plan"]).groups] == [
        ("North", 3),
        ("South", 3),
    ]
    assert job_progress(pool, job) == (0, 3)

    published = [render(pool, storage, job, report_id, no) for no in range(3)]

    assert published == [[], [], [MergeReport(job_id=job.job_id, report_id=report_id)]]
    assert job_progress(pool, job) == (3, 3)

    result = merge(pool, storage, job, report_id)

    assert result["report_id"] == str(report_id)
    assert result["pages"] == 6
    report = report_row(pool, report_id)
    assert report["status"] == "ready"
    assert report["expires_at"] is not None
    assert report["bytes"] == result["bytes"]
    out = tmp_path / "report.pdf"
    storage.download(reports.report_key(report_id), out)
    reader = PdfReader(out, strict=True)
    assert len(reader.pages) == 6
    assert [str(item.title) for item in reader.outline] == ["North", "South"]  # type: ignore[union-attr]
    assert out.stat().st_size == result["bytes"]
    assert not list(storage.list_objects(reports.chunks_prefix(report_id)))


def test_only_the_render_that_finishes_the_last_chunk_publishes_the_merge(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    report_id = add_report(pool, storage, job, 5 * ROWS_PER_PAGE)
    plan(pool, storage, job, report_id)
    merge_report = MergeReport(job_id=job.job_id, report_id=report_id)

    assert render(pool, storage, job, report_id, 2) == []
    assert render(pool, storage, job, report_id, 0) == []
    # A redelivered chunk is not rendered or counted again.
    assert render(pool, storage, job, report_id, 0) == []
    assert report_row(pool, report_id)["chunks_done"] == 2
    assert render(pool, storage, job, report_id, 1) == [merge_report]
    # Redelivered after the last one: the merge again (it is idempotent).
    assert render(pool, storage, job, report_id, 1) == [merge_report]
    assert report_row(pool, report_id)["chunks_done"] == 3


def test_a_redelivered_plan_keeps_its_plan_and_publishes_what_is_left(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    report_id = add_report(pool, storage, job, 5 * ROWS_PER_PAGE)
    plan(pool, storage, job, report_id)
    first_plan = report_row(pool, report_id)["plan"]
    render(pool, storage, job, report_id, 1)

    assert plan(pool, storage, job, report_id) == [
        RenderChunk(job_id=job.job_id, report_id=report_id, chunk_no=0),
        RenderChunk(job_id=job.job_id, report_id=report_id, chunk_no=2),
    ]
    assert report_row(pool, report_id)["plan"] == first_plan
    assert job_progress(pool, job) == (1, 3)

    render(pool, storage, job, report_id, 0)
    render(pool, storage, job, report_id, 2)
    assert plan(pool, storage, job, report_id) == [
        MergeReport(job_id=job.job_id, report_id=report_id)
    ]


@pytest.mark.parametrize(
    ("group_by", "limits", "refusal"),
    [
        ("id", {"max_groups": 10}, "more than 10 groups"),
        (None, {"max_pages": 4}, "more than 4 pages"),
        ("region", {"max_pages": 4}, "more than 4 pages"),
    ],
)
def test_a_report_past_its_caps_fails_at_once_and_stores_nothing(
    pool: ConnectionPool,
    storage: GuardedStorage,
    job: JobContext,
    group_by: str | None,
    limits: dict[str, int],
    refusal: str,
) -> None:
    report_id = add_report(pool, storage, job, 5 * ROWS_PER_PAGE, group_by=group_by)
    sent: list[Message] = []

    with pytest.raises(ReportTooLarge, match=refusal) as refused:
        plan(pool, storage, job, report_id, sent, **limits)

    assert refused.value.code == "report_too_large"
    assert sent == []
    report = report_row(pool, report_id)
    assert (report["status"], report["plan"], report["chunks_total"]) == ("queued", None, None)
    with pool.connection() as conn:
        assert reports.pending_chunks(conn, report_id) == []
    assert not list(storage.list_objects(f"reports/{report_id}/"))


def test_a_render_reads_its_chunk_of_the_plan_not_the_whole(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    # Every row its own group: 5 * ROWS_PER_PAGE pages in chunks of 2.
    report_id = add_report(pool, storage, job, 5 * ROWS_PER_PAGE, group_by="id")
    plan(pool, storage, job, report_id)
    whole = report_row(pool, report_id)["plan"]
    assert len(whole["chunks"]) == -(-5 * ROWS_PER_PAGE // 2)

    with pool.connection() as conn:
        report = reports.load_chunk(conn, report_id, 7)
    assert report is not None
    assert "chunks" not in report["plan"] and report["chunk"] == whole["chunks"][7]
    assert len(json.dumps(report["plan"])) + len(json.dumps(report["chunk"])) < 200
    assert report["title"] == "Ledger"

    render(pool, storage, job, report_id, 7)
    out = storage.root / reports.chunk_key(report_id, 7)
    reader = PdfReader(out, strict=True)
    assert [page.extract_text().count("(continued)") for page in reader.pages] == [0, 0]
    assert str(15) in reader.pages[0].extract_text()


def test_an_empty_report_is_one_page(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext, tmp_path: Path
) -> None:
    report_id = add_report(pool, storage, job, 0)
    assert plan(pool, storage, job, report_id) == renders(job, report_id, range(1))
    render(pool, storage, job, report_id, 0)
    assert merge(pool, storage, job, report_id)["pages"] == 1


def test_a_missing_report_publishes_nothing(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    missing = uuid.uuid4()
    assert plan(pool, storage, job, missing) == []
    assert render(pool, storage, job, missing, 0) == []
    with pytest.raises(PdfgenError, match="is gone"):
        merge(pool, storage, job, missing)


def test_an_unplanned_report_renders_nothing(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    report_id = add_report(pool, storage, job, 10)
    assert render(pool, storage, job, report_id, 0) == []
    assert not list(storage.list_objects(reports.chunks_prefix(report_id)))


def test_a_cancelled_job_publishes_nothing(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    report_id = add_report(pool, storage, job, 5 * ROWS_PER_PAGE)
    plan(pool, storage, job, report_id)
    with pool.connection() as conn:
        conn.execute("UPDATE jobs SET status = 'cancelled' WHERE id = %s", (job.job_id,))
    for no in range(3):
        sent: list[Message] = []
        with pytest.raises(JobCancelled):
            pipeline.render(
                RenderChunk(job_id=job.job_id, report_id=report_id, chunk_no=no),
                job,
                pool=pool,
                storage=storage,
                publish=sent.append,
            )
        assert sent == []  # not even the merge after the last chunk
    # Each chunk was recorded before its progress found the job cancelled.
    assert report_row(pool, report_id)["chunks_done"] == 3
    with pytest.raises(JobCancelled):
        plan(pool, storage, job, report_id)


def test_merge_waits_for_every_chunk_and_a_redelivered_merge_returns_the_report(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    report_id = add_report(pool, storage, job, 5 * ROWS_PER_PAGE)
    plan(pool, storage, job, report_id)
    render(pool, storage, job, report_id, 0)
    with pytest.raises(PdfgenError, match="not ready to merge"):
        merge(pool, storage, job, report_id)

    render(pool, storage, job, report_id, 1)
    render(pool, storage, job, report_id, 2)
    first = merge(pool, storage, job, report_id)
    assert merge(pool, storage, job, report_id) == first


def test_no_pooled_connection_is_held_while_rendering_storing_or_merging(
    pool: ConnectionPool,
    storage: GuardedStorage,
    job: JobContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pool has one connection: rendering, merging and every storage call check it is
    back in the pool while they run."""
    render_pages, merge_chunks = pipeline.render_pages, pipeline.merge_chunks

    def guarded_render(*args: Any, **kwargs: Any) -> int:
        storage.check_pool_free("render")
        return render_pages(*args, **kwargs)

    def guarded_merge(*args: Any, **kwargs: Any) -> Any:
        storage.check_pool_free("merge")
        return merge_chunks(*args, **kwargs)

    monkeypatch.setattr(pipeline, "render_pages", guarded_render)
    monkeypatch.setattr(pipeline, "merge_chunks", guarded_merge)
    report_id = add_report(pool, storage, job, 5 * ROWS_PER_PAGE, group_by="region")

    plan(pool, storage, job, report_id)
    for no in range(3):
        render(pool, storage, job, report_id, no)
    merge(pool, storage, job, report_id)

    checked = storage.checked
    assert checked.count("render") == 3
    assert checked.count("merge") == 1
    assert checked.count("put_file") == 4  # three chunks and the report
    assert checked.count("download") == 3
    assert checked.count("delete_prefix") == 1
    # Index and rows for the groups, then index and rows per chunk (read while it renders).
    assert checked.count("open_reader") == 2 + 3 * 2


def test_the_guard_notices_a_held_connection(pool: ConnectionPool, storage: GuardedStorage) -> None:
    storage.put_bytes("probe", b"x")
    with pool.connection(), pytest.raises(pytest.fail.Exception, match="held across download"):
        storage.download("probe", storage.root / "copy")


def test_each_chunk_is_recorded_with_its_pages_and_size(
    pool: ConnectionPool, storage: GuardedStorage, job: JobContext
) -> None:
    report_id = add_report(pool, storage, job, 3 * ROWS_PER_PAGE + 1)  # 4 pages, 2 chunks
    plan(pool, storage, job, report_id)
    for no in range(2):
        render(pool, storage, job, report_id, no)
    with pool.connection() as conn:
        rows = conn.execute(
            "SELECT chunk_no, status, pages, bytes FROM report_chunks WHERE report_id = %s "
            "ORDER BY chunk_no",
            (report_id,),
        ).fetchall()
    sizes = [storage.size(reports.chunk_key(report_id, no)) for no in range(2)]
    assert rows == [(0, "done", 2, sizes[0]), (1, "done", 2, sizes[1])]
