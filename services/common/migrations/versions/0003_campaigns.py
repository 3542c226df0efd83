"""Push campaigns, their batches and per-device deliveries."""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE campaigns (
            id uuid PRIMARY KEY,
            title text NOT NULL,
            body text NOT NULL,
            data jsonb NOT NULL DEFAULT '{}',
            priority text NOT NULL CHECK (priority IN ('high', 'normal', 'low')),
            target jsonb NOT NULL,
            send_at timestamptz,
            status text NOT NULL DEFAULT 'draft' CHECK (status IN
                ('draft', 'scheduled', 'processing', 'completed', 'cancelled', 'failed')),
            job_id uuid,
            total integer NOT NULL DEFAULT 0,
            sent integer NOT NULL DEFAULT 0,
            succeeded integer NOT NULL DEFAULT 0,
            failed integer NOT NULL DEFAULT 0,
            batches_total integer NOT NULL DEFAULT 0,
            batches_done integer NOT NULL DEFAULT 0,
            fanout_done boolean NOT NULL DEFAULT false,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            completed_at timestamptz
        );
        CREATE INDEX campaigns_status ON campaigns (status, created_at DESC);
        CREATE INDEX campaigns_due ON campaigns (send_at) WHERE status = 'scheduled';

        CREATE TABLE campaign_batches (
            campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            batch_no integer NOT NULL,
            after_id bigint NOT NULL,
            last_id bigint NOT NULL,
            size integer NOT NULL,
            status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
            attempts integer NOT NULL DEFAULT 0,
            settled_at timestamptz,
            PRIMARY KEY (campaign_id, batch_no)
        );

        -- One row per device a campaign reached (or gave up on): what makes batches idempotent.
        CREATE TABLE deliveries (
            campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            device_id bigint NOT NULL,
            ok boolean NOT NULL,
            code text,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (campaign_id, device_id)
        );

        CREATE TABLE campaign_failures (
            campaign_id uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
            code text NOT NULL,
            count integer NOT NULL,
            PRIMARY KEY (campaign_id, code)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE campaign_failures; DROP TABLE deliveries; DROP TABLE campaign_batches; "
        "DROP TABLE campaigns;"
    )
