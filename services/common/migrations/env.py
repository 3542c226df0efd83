"""Alembic environment: online migrations only, serialised across concurrent starters."""

from alembic import context
from sqlalchemy import create_engine, text

# Any constant works; it only has to be the same for every process that migrates.
MIGRATION_LOCK = 7_461_001

url = context.config.get_main_option("sqlalchemy.url")
engine = create_engine(str(url))
with engine.connect() as connection:
    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
    try:
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
        connection.commit()
engine.dispose()
