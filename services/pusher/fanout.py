"""Fan-out: stream a campaign's target device ids in keyset pages and plan one batch per page;
and the start of scheduled campaigns whose time has come.

Never holds more than one page of ids: each page (at most `batch_size` ids, read from an
index-only scan) becomes a batch (after_id, last_id] that is recorded and published before
the next page is read. A redelivered fan-out resumes after its last recorded batch.
"""

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from psycopg import Connection, sql
from psycopg_pool import ConnectionPool

from services.common.contracts import TaskPayload
from services.common.contracts.push import SendBatch, SendCampaign, message_priority, queue_for
from services.common.store import campaigns
from services.common.store.campaigns import Campaign
from services.pusher.targeting import target_filter

log = logging.getLogger(__name__)


# Publishes a task message: (payload, queue, AMQP priority).
Publish = Callable[[TaskPayload, str, int], None]


@dataclass(frozen=True)
class PlannedBatch:
    batch_no: int
    after_id: int
    last_id: int
    size: int


def plan_batches(
    conn: Connection[Any],
    target: dict[str, Any],
    *,
    after_id: int,
    first_batch_no: int,
    batch_size: int,
) -> Iterator[PlannedBatch]:
    """Keyset-paginate the target's active device ids into batches, lazily."""
    condition, params = target_filter(target)
    query = sql.SQL(
        "SELECT id FROM devices WHERE active AND {} AND id > %(after)s ORDER BY id LIMIT %(n)s"
    ).format(condition)
    batch_no = first_batch_no
    while True:
        rows = conn.execute(query, {**params, "after": after_id, "n": batch_size}).fetchall()
        if not rows:
            return
        last_id = rows[-1][0]
        yield PlannedBatch(batch_no, after_id, last_id, len(rows))
        if len(rows) < batch_size:
            return
        batch_no, after_id = batch_no + 1, last_id


def fan_out(
    conn: Connection[Any],
    campaign: Campaign,
    job_id: Any,
    batch_size: int,
    publish: Callable[[SendBatch], None],
) -> int:
    """Plan and publish every batch of the campaign; the number of batches published."""
    campaigns.mark_started(conn, campaign.id)
    next_no, after_id = campaigns.resume_point(conn, campaign.id)
    published = 0
    if next_no > 0:
        # A redelivered fan-out: the last recorded batch may not have been published.
        last = campaigns.batch_range(conn, campaign.id, next_no - 1)
        if last is not None:
            publish(
                SendBatch(
                    job_id=job_id,
                    campaign_id=campaign.id,
                    batch_no=next_no - 1,
                    after_id=last[0],
                    last_id=last[1],
                )
            )
            published += 1
        log.info("resuming fan-out after batch %d", next_no - 1)
    for batch in plan_batches(
        conn, campaign.target, after_id=after_id, first_batch_no=next_no, batch_size=batch_size
    ):
        campaigns.record_batch(
            conn, campaign.id, batch.batch_no, batch.after_id, batch.last_id, batch.size
        )
        publish(
            SendBatch(
                job_id=job_id,
                campaign_id=campaign.id,
                batch_no=batch.batch_no,
                after_id=batch.after_id,
                last_id=batch.last_id,
            )
        )
        published += 1
    campaigns.finish_fanout(conn, campaign.id, job_id)
    log.info("fan-out published %d batches", published)
    return published


def fan_out_campaign(
    pool: ConnectionPool, request: SendCampaign, batch_size: int, publish: Publish
) -> None:
    """Start a due campaign and publish its batches (to its priority's queue)."""
    with pool.connection() as conn:
        campaigns.claim_due(conn, request.campaign_id)
        campaign = campaigns.load(conn, request.campaign_id)
        if campaign is None or campaign.status != "processing":
            log.info("campaign %s is not processing; nothing to fan out", request.campaign_id)
            return
        queue, priority = queue_for(campaign.priority), message_priority(campaign.priority)
        fan_out(
            conn,
            campaign,
            request.job_id,
            batch_size,
            lambda batch: publish(batch, queue, priority),
        )


def dispatch_due(pool: ConnectionPool, publish: Publish) -> int:
    """Publish the fan-out of scheduled campaigns whose send time has come; how many."""
    started = 0
    with pool.connection() as conn:
        for campaign_id, job_id, priority in campaigns.due(conn):
            # Publish first: a crash before the claim republishes next time (fan-out is
            # idempotent); the other order could leave a campaign processing with no fan-out.
            request = SendCampaign(job_id=job_id, campaign_id=campaign_id)
            publish(request, queue_for(priority), message_priority(priority))
            campaigns.claim_due(conn, campaign_id)
            started += 1
    return started
