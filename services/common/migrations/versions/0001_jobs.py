"""Jobs, idempotency keys and blog scores."""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE jobs (
            id uuid PRIMARY KEY,
            kind text NOT NULL,
            status text NOT NULL
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
            payload jsonb NOT NULL,
            priority smallint NOT NULL DEFAULT 5,
            request_id text,
            progress_done integer,
            progress_total integer,
            result jsonb,
            error_code text,
            error_message text,
            attempts integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz,
            -- Last sign of life from a worker; the sweeper settles running jobs that go quiet.
            heartbeat_at timestamptz
        );
        CREATE INDEX jobs_running_heartbeat ON jobs (heartbeat_at) WHERE status = 'running';
        CREATE INDEX jobs_kind_created ON jobs (kind, created_at DESC);

        CREATE TABLE idempotency_keys (
            scope text NOT NULL,
            key text NOT NULL,
            request_hash text NOT NULL,
            job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (scope, key)
        );
        CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

        CREATE TABLE blog_scores (
            blog_url text PRIMARY KEY,
            score real NOT NULL,
            result jsonb NOT NULL,
            job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
            analyzed_at timestamptz NOT NULL
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE blog_scores; DROP TABLE idempotency_keys; DROP TABLE jobs;")
