"""The reports and report_chunks tables: the only code that writes them.

The gateway records a report (async) when it accepts one; the pdfgen workers move it on
(sync): plan, chunk completion (the fan-in counter), merge and readiness, every transition
guarded so redeliveries are harmless.

Each step forward (planned, a chunk rendered, merge started) also sets progressed_at in the
statement that records it, for the exporter's stall gauge; creation sets it by default.
"""

from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

# A report as the gateway shows it, with its job's status (a failed job shows through).
SELECT_VIEW = (
    "SELECT r.id, r.status, r.pages, r.chunks_done, r.chunks_total, r.bytes, r.expires_at, "
    "r.file_key, r.job_id, j.status AS job_status, j.error_code, j.error_message "
    "FROM reports r JOIN jobs j ON j.id = r.job_id WHERE r.id = %s"
)


def chunk_key(report_id: UUID, chunk_no: int) -> str:
    return f"reports/{report_id}/chunks/{chunk_no:06d}.pdf"


def chunks_prefix(report_id: UUID) -> str:
    return f"reports/{report_id}/chunks/"


def report_key(report_id: UUID) -> str:
    return f"reports/{report_id}/report.pdf"


def load(conn: Connection[Any], report_id: UUID) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM reports WHERE id = %s", (report_id,)).fetchone()


def load_chunk(conn: Connection[Any], report_id: UUID, chunk_no: int) -> dict[str, Any] | None:
    """The report as one render task needs it: `plan` without its chunks, and `chunk`, the
    entry of chunk `chunk_no` (the worker receives that entry, not the whole plan)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, title, columns, group_by, upload_id, status, chunks_done, chunks_total, "
            "created_at, plan - 'chunks' AS plan, plan -> 'chunks' -> %s::int AS chunk "
            "FROM reports WHERE id = %s",
            (chunk_no, report_id),
        ).fetchone()


def store_plan(
    conn: Connection[Any], report_id: UUID, plan: dict[str, Any], pages: int, chunks: int
) -> None:
    """Record the plan and its chunks once (a redelivered plan task keeps the first)."""
    with conn.transaction():
        stored = conn.execute(
            "UPDATE reports SET plan = %s, pages = %s, chunks_total = %s, status = 'rendering', "
            "progressed_at = now() WHERE id = %s AND plan IS NULL RETURNING id",
            (Jsonb(plan), pages, chunks, report_id),
        ).fetchone()
        if stored:
            conn.execute(
                "INSERT INTO report_chunks (report_id, chunk_no) "
                "SELECT %s, generate_series(0, %s - 1) ON CONFLICT DO NOTHING",
                (report_id, chunks),
            )


def pending_chunks(conn: Connection[Any], report_id: UUID) -> list[int]:
    rows = conn.execute(
        "SELECT chunk_no FROM report_chunks WHERE report_id = %s AND status = 'pending' "
        "ORDER BY chunk_no",
        (report_id,),
    ).fetchall()
    return [row[0] for row in rows]


def is_chunk_done(conn: Connection[Any], report_id: UUID, chunk_no: int) -> bool:
    row = conn.execute(
        "SELECT status FROM report_chunks WHERE report_id = %s AND chunk_no = %s",
        (report_id, chunk_no),
    ).fetchone()
    return row is not None and row[0] == "done"


def chunk_done(
    conn: Connection[Any],
    report_id: UUID,
    chunk_no: int,
    *,
    pages: int,
    size: int,
    render_s: float,
    peak_rss: int,
) -> tuple[int, int]:
    """Mark a chunk done (counted once); (chunks done, chunks total) afterwards."""
    with conn.transaction():
        flipped = conn.execute(
            "UPDATE report_chunks SET status = 'done', pages = %s, bytes = %s, render_s = %s, "
            "peak_rss_bytes = %s WHERE report_id = %s AND chunk_no = %s AND status = 'pending' "
            "RETURNING chunk_no",
            (pages, size, render_s, peak_rss, report_id, chunk_no),
        ).fetchone()
        if flipped:
            conn.execute(
                "UPDATE reports SET chunks_done = chunks_done + 1, progressed_at = now() "
                "WHERE id = %s",
                (report_id,),
            )
        row = conn.execute(
            "SELECT chunks_done, chunks_total FROM reports WHERE id = %s", (report_id,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def start_merge(conn: Connection[Any], report_id: UUID) -> bool:
    """Enter merging when every chunk is done (also true for a redelivered merge)."""
    row = conn.execute(
        "UPDATE reports SET status = 'merging', progressed_at = now() WHERE id = %s "
        "AND status IN ('rendering', 'merging') AND chunks_done = chunks_total RETURNING id",
        (report_id,),
    ).fetchone()
    return row is not None


def mark_ready(
    conn: Connection[Any], report_id: UUID, *, key: str, size: int, pages: int, ttl_s: int
) -> bool:
    row = conn.execute(
        "UPDATE reports SET status = 'ready', file_key = %s, bytes = %s, pages = %s, "
        "completed_at = now(), expires_at = now() + make_interval(secs => %s) "
        "WHERE id = %s AND status = 'merging' RETURNING id",
        (key, size, pages, ttl_s, report_id),
    ).fetchone()
    return row is not None


def upload_in_use(conn: Connection[Any], upload_id: str) -> bool:
    """Whether a report not finished yet reads this upload (its id as 32 hex digits)."""
    row = conn.execute(
        "SELECT 1 FROM reports WHERE status IN ('queued', 'rendering', 'merging') "
        "AND replace(lower(upload_id), '-', '') = %s LIMIT 1",
        (upload_id,),
    ).fetchone()
    return row is not None


def take_expired(conn: Connection[Any], limit: int = 100) -> list[dict[str, Any]]:
    """Reports past their expiry, marked expired (their files are the caller's to delete)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "UPDATE reports SET status = 'expired' WHERE id IN ("
            "SELECT id FROM reports WHERE status = 'ready' AND expires_at < now() LIMIT %s) "
            "RETURNING id, upload_id, owns_upload",
            (limit,),
        ).fetchall()


async def insert(
    conn: AsyncConnection[Any],
    report_id: UUID,
    job_id: UUID,
    *,
    title: str,
    columns: list[dict[str, Any]],
    group_by: str | None,
    upload_id: str,
    owns_upload: bool,
) -> None:
    """Record an accepted report (queued) before its job is published."""
    await conn.execute(
        "INSERT INTO reports (id, job_id, title, columns, group_by, upload_id, owns_upload) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (report_id, job_id, title, Jsonb(columns), group_by, upload_id, owns_upload),
    )


async def delete(conn: AsyncConnection[Any], report_id: UUID) -> None:
    """Forget a report whose job was never accepted (or was an idempotent replay)."""
    await conn.execute("DELETE FROM reports WHERE id = %s", (report_id,))


async def fetch_view(conn: AsyncConnection[Any], report_id: UUID) -> dict[str, Any] | None:
    """The report with its job's status, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(SELECT_VIEW, (report_id,))
        return await cur.fetchone()
