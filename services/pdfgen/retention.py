"""What pdfgen's periodic cleanup removes: expired reports' files, and expired uploads."""

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import Connection
from psycopg_pool import ConnectionPool

from services.common.rowfiles import canonical_id, stale_uploads, upload_prefix
from services.common.storage import Storage
from services.common.store import reports

log = logging.getLogger(__name__)

# An upload is deleted this long after it expired: the gateway stopped accepting it at expiry,
# so a report accepted just before then has long been recorded (and protects it) by now.
UPLOAD_GRACE_S = 3600


def remove_expired_reports(conn: Connection[Any], storage: Storage) -> int:
    """Mark reports past their expiry expired and delete their files (and owned uploads)."""
    expired = reports.take_expired(conn)
    for report in expired:
        storage.delete_prefix(f"reports/{report['id']}/")
        if report["owns_upload"]:
            storage.delete_prefix(upload_prefix(report["upload_id"]))
    if expired:
        log.info("removed %d expired reports", len(expired))
    return len(expired)


def remove_expired_uploads(
    conn: Connection[Any], storage: Storage, ttl_s: int, now: datetime | None = None
) -> int:
    """Delete uploads untouched for `ttl_s` plus the grace period, unless a report being
    built still reads them; partial uploads a crashed gateway left behind go the same way."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=ttl_s + UPLOAD_GRACE_S)
    removed = 0
    for upload_id in stale_uploads(storage, cutoff):
        if reports.upload_in_use(conn, canonical_id(upload_id)):
            continue
        storage.delete_prefix(upload_prefix(upload_id))
        removed += 1
    if removed:
        log.info("removed %d expired uploads", removed)
    return removed


def cleanup(pool: ConnectionPool, storage: Storage, upload_ttl_s: int) -> dict[str, int]:
    """Remove expired reports, then expired uploads; how many of each went."""
    with pool.connection() as conn:
        return {
            "reports": remove_expired_reports(conn, storage),
            "uploads": remove_expired_uploads(conn, storage, upload_ttl_s),
        }
