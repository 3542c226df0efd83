"""When each campaign and report last moved forward: what the exporter's stall gauge reads.

Workers set `progressed_at = now()` in the statements that already record a step (a campaign
claimed, fanned out, a batch planned or settled; a report planned, a chunk rendered, the merge
started), so it costs no extra write. Neither column is indexed: the campaign row is updated
twice per batch (about 4,000 times for a 1M-device campaign) and those updates stay HOT. The
exporter finds in-progress campaigns through campaigns_status and in-progress reports through
reports_in_progress, so a scrape reads one row per item in progress and nothing per device.
"""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute(
        """
        -- NULL until a worker first touches the campaign (the exporter then uses its job's
        -- created_at: when it was sent).
        ALTER TABLE campaigns ADD COLUMN progressed_at timestamptz;
        UPDATE campaigns c SET progressed_at = greatest(
            c.started_at,
            (SELECT max(b.settled_at) FROM campaign_batches b WHERE b.campaign_id = c.id)
        ) WHERE c.status = 'processing';

        -- A report starts being built when it is created. Reports that predate this column
        -- get the migration's time: their steps were not recorded.
        ALTER TABLE reports ADD COLUMN progressed_at timestamptz NOT NULL DEFAULT now();
        CREATE INDEX reports_in_progress ON reports (job_id)
            WHERE status IN ('queued', 'rendering', 'merging');
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX reports_in_progress; ALTER TABLE reports DROP COLUMN progressed_at; "
        "ALTER TABLE campaigns DROP COLUMN progressed_at;"
    )
