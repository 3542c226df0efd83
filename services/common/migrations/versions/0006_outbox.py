"""The job row is the outbox: it is recorded before its message is published.

`task` and `queue` say what to publish for the job (NULL: something else publishes it, as beat
does for a scheduled campaign); `published_at` is set once the broker confirmed the message.
A relay in every gateway publishes the rows a crashed or failed request left unpublished.
Rows that predate this migration were recorded after their confirm: they count as published.
"""

from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE jobs ADD COLUMN task text, ADD COLUMN queue text,
            ADD COLUMN published_at timestamptz;
        UPDATE jobs SET published_at = created_at;
        CREATE INDEX jobs_unpublished ON jobs (created_at)
            WHERE published_at IS NULL AND task IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX jobs_unpublished; "
        "ALTER TABLE jobs DROP COLUMN published_at, DROP COLUMN queue, DROP COLUMN task;"
    )
