"""PDF reports and their chunks."""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE reports (
            id uuid PRIMARY KEY,
            job_id uuid NOT NULL,
            title text NOT NULL,
            columns jsonb NOT NULL,
            group_by text,
            upload_id text NOT NULL,
            -- An upload made for this report's inline rows is removed with the report.
            owns_upload boolean NOT NULL DEFAULT false,
            status text NOT NULL DEFAULT 'queued' CHECK (status IN
                ('queued', 'rendering', 'merging', 'ready', 'failed', 'cancelled', 'expired')),
            plan jsonb,
            pages integer,
            chunks_total integer,
            chunks_done integer NOT NULL DEFAULT 0,
            bytes bigint,
            file_key text,
            created_at timestamptz NOT NULL DEFAULT now(),
            completed_at timestamptz,
            expires_at timestamptz
        );
        CREATE INDEX reports_expiry ON reports (expires_at) WHERE status = 'ready';

        CREATE TABLE report_chunks (
            report_id uuid NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
            chunk_no integer NOT NULL,
            status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
            pages integer,
            bytes bigint,
            render_s real,
            peak_rss_bytes bigint,
            PRIMARY KEY (report_id, chunk_no)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE report_chunks; DROP TABLE reports;")
