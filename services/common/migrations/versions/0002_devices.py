"""Device registry: push tokens with platform, user, topics and an active flag.

Campaign senders stream active device ids by keyset pagination, one index per target:
  all:      WHERE active AND id > $last ORDER BY id LIMIT 500             devices_active_id
  user ids: WHERE active AND user_id = ANY($ids) AND id > $last ...        devices_active_user
  topic:    WHERE active AND topics @> ARRAY[$topic] AND id > $last ...    devices_active_topics
            (or devices_active_id with a filter when the topic is common; the planner picks)
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE devices (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            -- A btree entry must fit in a third of a page (2704 bytes): tokens stop at 2048.
            token text NOT NULL UNIQUE CHECK (octet_length(token) BETWEEN 1 AND 2048),
            platform text NOT NULL CHECK (platform IN ('android', 'ios', 'web')),
            user_id text CHECK (char_length(user_id) BETWEEN 1 AND 256),
            topics text[] NOT NULL DEFAULT '{}',
            active boolean NOT NULL DEFAULT true,
            -- Why it stopped receiving pushes: 'unregistered' (DELETE), or FCM's error code.
            deactivated_reason text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            deactivated_at timestamptz
        );
        CREATE INDEX devices_active_id ON devices (id) WHERE active;
        CREATE INDEX devices_active_user ON devices (user_id, id)
            WHERE active AND user_id IS NOT NULL;
        CREATE INDEX devices_active_topics ON devices USING gin (topics) WHERE active;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE devices;")
