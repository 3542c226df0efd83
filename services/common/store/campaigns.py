"""The campaign tables: the only code that writes campaigns, campaign_batches, deliveries
and campaign_failures.

The gateway creates, sends (claims for a job) and cancels campaigns (async); the pusher
workers move them on (sync): load, fan-out bookkeeping, batch settlement, fan-in.

Counters are only ever added by the transaction that flips a batch from pending to done, and
they are computed from the deliveries table, so a redelivered batch can neither double-count
nor lose a delivery; the batch whose settlement makes batches_done reach batches_total (after
fan-out finished) completes the campaign, exactly once, with a guarded update.

Every step forward (claimed, fan-out started, a batch planned, a batch settled) also sets
progressed_at in the statement that records it, for the exporter's stall gauge; a redelivery
that changes nothing is not progress.
"""

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from psycopg import AsyncConnection, Connection
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from services.common import jobs
from services.common.jobs import JobStatus

DEVICE_GONE = "DEVICE_GONE"
COLUMNS = "id, status, title, body, data, priority, target, send_at, job_id, created_at"
# A campaign whose job failed for good or was cancelled through /v1/jobs shows that status: no
# worker will move it on, whatever its own row last said.
SHOWN_STATUS = (
    "CASE WHEN c.status IN ('scheduled', 'processing') AND j.status IN ('failed', 'cancelled') "
    "THEN j.status ELSE c.status END"
)
SELECT_VIEWS = (
    f"SELECT c.id, {SHOWN_STATUS} AS status, c.title, c.body, c.data, c.priority, c.target, "
    "c.send_at, c.job_id, c.created_at FROM campaigns c LEFT JOIN jobs j ON j.id = c.job_id"
)


@dataclass(frozen=True)
class Campaign:
    """What a task needs of a campaign (re-read inside every task)."""

    id: UUID
    title: str
    body: str
    data: dict[str, str]
    priority: str
    target: dict[str, Any]
    status: str


def load(conn: Connection[Any], campaign_id: UUID) -> Campaign | None:
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT id, title, body, data, priority, target, status FROM campaigns WHERE id = %s",
            (campaign_id,),
        ).fetchone()
    return Campaign(**row) if row else None


def status(conn: Connection[Any], campaign_id: UUID) -> str | None:
    """The campaign's own status, or None if it is gone."""
    row = conn.execute("SELECT status FROM campaigns WHERE id = %s", (campaign_id,)).fetchone()
    return None if row is None else str(row[0])


def batch_range(conn: Connection[Any], campaign_id: UUID, batch_no: int) -> tuple[int, int] | None:
    """(after id, last id] of a recorded batch, or None."""
    row = conn.execute(
        "SELECT after_id, last_id FROM campaign_batches WHERE campaign_id = %s AND batch_no = %s",
        (campaign_id, batch_no),
    ).fetchone()
    return None if row is None else (row[0], row[1])


def due(conn: Connection[Any], limit: int = 100) -> list[tuple[UUID, UUID, str]]:
    """(campaign id, job id, priority) of scheduled campaigns whose send time has come."""
    rows = conn.execute(
        "SELECT id, job_id, priority FROM campaigns "
        "WHERE status = 'scheduled' AND send_at <= now() ORDER BY send_at LIMIT %s",
        (limit,),
    ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def claim_due(conn: Connection[Any], campaign_id: UUID) -> None:
    """Move a scheduled campaign whose time has come to processing (dispatch, or its fan-out)."""
    conn.execute(
        "UPDATE campaigns SET status = 'processing', progressed_at = now() "
        "WHERE id = %s AND status = 'scheduled' AND send_at <= now()",
        (campaign_id,),
    )


def mark_started(conn: Connection[Any], campaign_id: UUID) -> None:
    conn.execute(
        "UPDATE campaigns SET started_at = coalesce(started_at, now()), progressed_at = now() "
        "WHERE id = %s",
        (campaign_id,),
    )


def resume_point(conn: Connection[Any], campaign_id: UUID) -> tuple[int, int]:
    """(next batch number, last device id planned) for a fan-out that may be a redelivery."""
    row = conn.execute(
        "SELECT batch_no, last_id FROM campaign_batches WHERE campaign_id = %s "
        "ORDER BY batch_no DESC LIMIT 1",
        (campaign_id,),
    ).fetchone()
    return (0, 0) if row is None else (row[0] + 1, row[1])


def record_batch(
    conn: Connection[Any],
    campaign_id: UUID,
    batch_no: int,
    after_id: int,
    last_id: int,
    size: int,
) -> None:
    """Record a planned batch (once) and add its devices to the campaign's total."""
    with conn.transaction():
        inserted = conn.execute(
            "INSERT INTO campaign_batches (campaign_id, batch_no, after_id, last_id, size) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING batch_no",
            (campaign_id, batch_no, after_id, last_id, size),
        ).fetchone()
        if inserted:
            conn.execute(
                "UPDATE campaigns SET total = total + %s, batches_total = batches_total + 1, "
                "progressed_at = now() WHERE id = %s",
                (size, campaign_id),
            )


def finish_fanout(conn: Connection[Any], campaign_id: UUID, job_id: UUID) -> bool:
    """Mark fan-out complete; completes the campaign now if every batch already settled."""
    conn.execute("UPDATE campaigns SET fanout_done = true WHERE id = %s", (campaign_id,))
    return complete_if_settled(conn, campaign_id, job_id)


def record_deliveries(
    conn: Connection[Any],
    campaign_id: UUID,
    outcomes: list[tuple[int, bool, str | None]],
) -> None:
    """Record final per-device outcomes (device id, ok, error code); repeats are ignored."""
    if not outcomes:
        return
    ids, oks, codes = (list(column) for column in zip(*outcomes, strict=True))
    conn.execute(
        "INSERT INTO deliveries (campaign_id, device_id, ok, code) "
        "SELECT %s, * FROM unnest(%s::bigint[], %s::boolean[], %s::text[]) "
        "ON CONFLICT DO NOTHING",
        (campaign_id, ids, oks, codes),
    )


def settle_batch(conn: Connection[Any], campaign_id: UUID, batch_no: int, job_id: UUID) -> bool:
    """Flip the batch to done and add its counts, once; True if the campaign completed."""
    with conn.transaction():
        batch = conn.execute(
            "UPDATE campaign_batches SET status = 'done', settled_at = now() "
            "WHERE campaign_id = %s AND batch_no = %s AND status = 'pending' "
            "RETURNING after_id, last_id, size",
            (campaign_id, batch_no),
        ).fetchone()
        if batch is None:
            return False  # settled by an earlier delivery of this message
        after_id, last_id, size = batch
        by_code = conn.execute(
            "SELECT ok, coalesce(code, ''), count(*) FROM deliveries "
            "WHERE campaign_id = %s AND device_id > %s AND device_id <= %s GROUP BY 1, 2",
            (campaign_id, after_id, last_id),
        ).fetchall()
        # Devices planned into the batch but deactivated or deleted before it ran.
        gone = size - sum(n for _, _, n in by_code)
        if gone > 0:
            by_code.append((False, DEVICE_GONE, gone))
        succeeded = sum(n for ok, _, n in by_code if ok)
        failed = sum(n for ok, _, n in by_code if not ok)
        for ok, code, n in by_code:
            if not ok:
                conn.execute(
                    "INSERT INTO campaign_failures (campaign_id, code, count) VALUES (%s, %s, %s) "
                    "ON CONFLICT (campaign_id, code) DO UPDATE "
                    "SET count = campaign_failures.count + EXCLUDED.count",
                    (campaign_id, code, n),
                )
        conn.execute(
            "UPDATE campaigns SET sent = sent + %s, succeeded = succeeded + %s, "
            "failed = failed + %s, batches_done = batches_done + 1, progressed_at = now() "
            "WHERE id = %s",
            (succeeded + failed, succeeded, failed, campaign_id),
        )
        progress = conn.execute(
            "SELECT sent, total FROM campaigns WHERE id = %s", (campaign_id,)
        ).fetchone()
        if progress is not None:
            jobs.record_progress(conn, job_id, progress[0], progress[1])
    return complete_if_settled(conn, campaign_id, job_id)


def complete_if_settled(conn: Connection[Any], campaign_id: UUID, job_id: UUID) -> bool:
    """Complete the campaign and its job if fan-out is done and every batch settled."""
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        done = cur.execute(
            "UPDATE campaigns SET status = 'completed', completed_at = now() "
            "WHERE id = %s AND status = 'processing' AND fanout_done "
            "AND batches_done = batches_total "
            "RETURNING id, total, sent, succeeded, failed",
            (campaign_id,),
        ).fetchone()
        if done is None:
            return False
        failures = cur.execute(
            "SELECT code, count FROM campaign_failures WHERE campaign_id = %s", (campaign_id,)
        ).fetchall()
        result = {
            "campaign_id": str(campaign_id),
            "total": done["total"],
            "sent": done["sent"],
            "succeeded": done["succeeded"],
            "failed": done["failed"],
            "failures_by_code": {f["code"]: f["count"] for f in failures},
        }
        jobs.finish(
            conn, job_id, JobStatus.SUCCEEDED, result=result, progress=(done["sent"], done["total"])
        )
    return True


def count_processing(conn: Connection[Any]) -> int:
    """How many campaigns are processing right now."""
    row = conn.execute("SELECT count(*) FROM campaigns WHERE status = 'processing'").fetchone()
    return int(row[0]) if row else 0


# Async: the gateway's writes and reads.


def _stored_statuses(shown: str | None) -> list[str]:
    """The row statuses a campaign shown as `shown` can have (so the status index is used)."""
    if shown in ("failed", "cancelled"):
        return [shown, "scheduled", "processing"]
    return [shown] if shown else []


async def fetch_view(conn: AsyncConnection[Any], campaign_id: UUID) -> dict[str, Any] | None:
    """The campaign as shown (its job's failure or cancellation shows through), or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{SELECT_VIEWS} WHERE c.id = %s", (campaign_id,))
        return await cur.fetchone()


async def list_views(
    conn: AsyncConnection[Any], status: str | None, limit: int
) -> list[dict[str, Any]]:
    """Campaigns as shown, newest first, only those shown as `status` if given."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"{SELECT_VIEWS} WHERE (%(s)s::text IS NULL "
            f"OR (c.status = ANY(%(stored)s) AND {SHOWN_STATUS} = %(s)s)) "
            "ORDER BY c.created_at DESC LIMIT %(n)s",
            {"s": status, "stored": _stored_statuses(status), "n": limit},
        )
        return await cur.fetchall()


async def fetch_stats(
    conn: AsyncConnection[Any], campaign_id: UUID
) -> tuple[dict[str, Any], dict[str, int]] | None:
    """The campaign's counters and its failures by code, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"SELECT {SHOWN_STATUS} AS status, c.total, c.sent, c.succeeded, c.failed, "
            "c.started_at, c.completed_at "
            "FROM campaigns c LEFT JOIN jobs j ON j.id = c.job_id WHERE c.id = %s",
            (campaign_id,),
        )
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(
            "SELECT code, count FROM campaign_failures WHERE campaign_id = %s", (campaign_id,)
        )
        failures = {f["code"]: f["count"] for f in await cur.fetchall()}
    return row, failures


async def create(
    conn: AsyncConnection[Any],
    campaign_id: UUID,
    *,
    title: str,
    body: str,
    data: dict[str, str],
    priority: str,
    target: dict[str, Any],
    send_at: Any,
) -> dict[str, Any]:
    """Record a draft campaign; its row."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "INSERT INTO campaigns (id, title, body, data, priority, target, send_at) "
            f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {COLUMNS}",
            (campaign_id, title, body, Jsonb(data), priority, Jsonb(target), send_at),
        )
        row = await cur.fetchone()
    assert row is not None
    return row


async def claim_for_send(
    conn: AsyncConnection[Any], campaign_id: UUID, job_id: UUID
) -> tuple[str, str] | None:
    """Give a draft campaign its job: (new status, priority), or None if it is not a draft."""
    cur = await conn.execute(
        "UPDATE campaigns SET job_id = %s, status = CASE WHEN send_at > now() "
        "THEN 'scheduled' ELSE 'processing' END "
        "WHERE id = %s AND status = 'draft' RETURNING status, priority",
        (job_id, campaign_id),
    )
    row = await cur.fetchone()
    return None if row is None else (row[0], row[1])


async def release_send(conn: AsyncConnection[Any], campaign_id: UUID, job_id: UUID) -> None:
    """Back to draft: the job claimed for the campaign was never accepted."""
    await conn.execute(
        "UPDATE campaigns SET status = 'draft', job_id = NULL WHERE id = %s AND job_id = %s",
        (campaign_id, job_id),
    )


async def cancel(conn: AsyncConnection[Any], campaign_id: UUID) -> dict[str, Any] | None:
    """Cancel a draft, scheduled or processing campaign and its job; its row, or None."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            "UPDATE campaigns SET status = 'cancelled', completed_at = now() "
            "WHERE id = %s AND status IN ('draft', 'scheduled', 'processing') "
            f"RETURNING {COLUMNS}",
            (campaign_id,),
        )
        row = await cur.fetchone()
    if row is not None and row["job_id"] is not None:
        await jobs.cancel(conn, row["job_id"])
    return row
