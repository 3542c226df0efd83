"""Pdfgen's periodic cleanup of uploads, on each storage backend and the real Postgres."""

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from services.common.rowfiles import rows_key, upload_prefix, write_rows
from services.common.storage import Storage
from services.pdfgen.retention import UPLOAD_GRACE_S, remove_expired_uploads
from tests.support import environment
from tests.support.s3 import s3_server, storage

__all__ = ["s3_server", "storage"]

pytestmark = pytest.mark.integration

TTL_S = 7 * 24 * 3600


@pytest.fixture
def conn(clean: None) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        yield conn


def add_report(conn: psycopg.Connection[tuple[object, ...]], upload_id: str, status: str) -> None:
    conn.execute(
        "INSERT INTO reports (id, job_id, title, columns, upload_id, status) "
        "VALUES (%s, %s, 'r', '[]', %s, %s)",
        (uuid.uuid4(), uuid.uuid4(), upload_id, status),
    )


def uploads_left(storage: Storage) -> set[str]:
    return {o.key.split("/")[1] for o in storage.list_objects("uploads/")}


def test_expired_uploads_go_unless_a_report_in_progress_reads_them(
    storage: Storage, conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    unused = write_rows(storage, [{"n": 1}]).upload_id
    read_by_rendering = write_rows(storage, [{"n": 2}]).upload_id
    read_by_queued = write_rows(storage, [{"n": 3}]).upload_id
    read_by_ready = write_rows(storage, [{"n": 4}]).upload_id
    partial = uuid.uuid4().hex
    storage.put_bytes(rows_key(partial), b'{"n": 5}\n')
    add_report(conn, read_by_rendering, "rendering")
    # Reports may name an upload in its dashed UUID spelling.
    add_report(conn, str(uuid.UUID(read_by_queued)), "queued")
    add_report(conn, read_by_ready, "ready")  # rendered: it needs its rows no more
    everything = {unused, read_by_rendering, read_by_queued, read_by_ready, partial}

    # Not yet past the TTL and the grace period: nothing goes.
    almost = datetime.now(UTC) + timedelta(seconds=TTL_S + UPLOAD_GRACE_S - 60)
    assert remove_expired_uploads(conn, storage, TTL_S, now=almost) == 0
    assert uploads_left(storage) == everything

    later = datetime.now(UTC) + timedelta(seconds=TTL_S + UPLOAD_GRACE_S + 5)
    assert remove_expired_uploads(conn, storage, TTL_S, now=later) == 3
    assert uploads_left(storage) == {read_by_rendering, read_by_queued}
    assert not list(storage.list_objects(upload_prefix(unused)))
