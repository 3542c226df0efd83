"""Reading an upload's rows back: in order, in ranges, seeking through the index."""

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.rowfiles import (
    MAX_COLUMNS,
    ROWS_PER_OFFSET,
    IndexBuilder,
    TooManyColumns,
    UploadExpired,
    UploadNotFound,
    check_live,
    iter_rows,
    new_upload_id,
    read_index,
    rows_key,
    stale_uploads,
    write_rows,
)
from services.common.storage import Storage

ROWS = 3_500


class CountingStorage:
    """A storage wrapper that records the byte ranges read."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.ranges: list[tuple[str, int, int | None]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_reader(self, key: str, start: int = 0, end: int | None = None) -> Any:
        self.ranges.append((key, start, end))
        return self.inner.open_reader(key, start, end)


def row(i: int) -> dict[str, Any]:
    # Rows of different lengths, so offsets are not a multiple of anything.
    return {"n": i, "name": "é" * (i % 7), "even": i % 2 == 0, "x": None if i % 5 else 1.5}


@pytest.fixture
def upload(storage: Storage) -> str:
    return write_rows(storage, (row(i) for i in range(ROWS))).upload_id


def test_the_index_describes_the_rows(storage: Storage, upload: str) -> None:
    index = read_index(storage, upload)
    assert (index.rows, index.format, index.rejected) == (ROWS, "ndjson", 0)
    assert index.columns == ["n", "name", "even", "x"]
    assert index.offsets_every == ROWS_PER_OFFSET and len(index.offsets) == 4
    with storage.open_reader(rows_key(upload)) as stream:
        data = stream.read()
    assert len(data) == index.stored_bytes
    lines = data.splitlines(keepends=True)
    for block, offset in enumerate(index.offsets):
        assert offset == sum(len(line) for line in lines[: block * ROWS_PER_OFFSET])
        assert json.loads(data[offset:].split(b"\n", 1)[0]) == row(block * ROWS_PER_OFFSET)


def test_all_rows_in_order(storage: Storage, upload: str) -> None:
    assert list(iter_rows(storage, upload)) == [row(i) for i in range(ROWS)]


@pytest.mark.parametrize(
    ("first", "count"),
    [
        (0, 1),
        (0, 1000),
        (999, 1),
        (999, 2),
        (1000, 1000),
        (1000, 1001),
        (1500, 1000),
        (2999, 501),
        (3499, 1),
        (3499, 10),
        (3000, None),
        (1234, None),
        (0, 0),
        (3500, 5),
        (9999, None),
    ],
)
def test_ranges_at_and_across_offset_boundaries(
    storage: Storage, upload: str, first: int, count: int | None
) -> None:
    end = ROWS if count is None else first + count
    expected = [row(i) for i in range(first, min(end, ROWS))]
    assert list(iter_rows(storage, upload, first, count)) == expected


def test_a_range_reads_only_the_blocks_it_needs(storage: Storage, upload: str) -> None:
    index = read_index(storage, upload)
    counting = CountingStorage(storage)
    rows = list(iter_rows(counting, upload, 1500, 700, index=index))
    assert [r["n"] for r in rows] == list(range(1500, 2200))
    assert counting.ranges == [(rows_key(upload), index.offsets[1], index.offsets[3])]

    counting.ranges.clear()
    tail = list(iter_rows(counting, upload, 3100, index=index))
    assert len(tail) == 400 and counting.ranges == [(rows_key(upload), index.offsets[3], None)]


def test_stopping_early_closes_the_stream(storage: Storage, upload: str) -> None:
    rows = iter_rows(storage, upload, 10)
    assert next(rows) == row(10)
    rows.close()  # the with-block inside exits; nothing leaks (S3: the body is closed)


def test_unknown_and_invalid_upload_ids(storage: Storage) -> None:
    for upload_id in ["0" * 32, "not-an-id", "../../etc"]:
        with pytest.raises(UploadNotFound):
            read_index(storage, upload_id)
    with pytest.raises(ValueError):
        iter_rows(storage, "0" * 32, -1)


def test_ids_in_either_uuid_spelling_name_the_same_upload(storage: Storage, upload: str) -> None:
    hyphenated = f"{upload[:8]}-{upload[8:12]}-{upload[12:16]}-{upload[16:20]}-{upload[20:]}"
    assert read_index(storage, hyphenated).upload_id == upload


def test_an_empty_upload(storage: Storage) -> None:
    index = write_rows(storage, [])
    assert (index.rows, index.offsets, index.columns) == (0, [], [])
    assert list(iter_rows(storage, index.upload_id)) == []


def test_index_builder_offsets_across_uneven_batches() -> None:
    lines = [b"x" * (1 + i % 3) + b"\n" for i in range(2_600)]
    builder = IndexBuilder()
    for size in [1, 998, 2, 1, 1500, 98]:
        builder.add(lines[builder.rows : builder.rows + size])
    assert builder.rows == 2_600 and builder.stored_bytes == sum(map(len, lines))
    assert builder.offsets == [sum(map(len, lines[:k])) for k in (0, 1000, 2000)]


def test_index_builder_refuses_a_key_past_the_column_cap() -> None:
    builder = IndexBuilder(max_columns=3)
    builder.see_keys(("a", "b"))
    builder.see_keys(("b", "c"))
    builder.see_keys(("a", "b"))  # a shape seen before
    with pytest.raises(TooManyColumns, match="more than 3 distinct columns"):
        builder.see_keys(("a", "d"))
    assert builder.columns == ["a", "b", "c"]


def test_the_column_cap_has_a_default_and_holds_for_ragged_rows() -> None:
    assert MAX_COLUMNS == 1000
    builder = IndexBuilder()
    with pytest.raises(TooManyColumns):
        for i in range(MAX_COLUMNS):  # every row a new shape with two new keys
            builder.see_keys((f"k{2 * i}", f"k{2 * i + 1}"))
    assert len(builder.columns) == MAX_COLUMNS


def test_rows_with_too_many_columns_are_not_stored(storage: Storage) -> None:
    rows = ({f"c{i}": i} for i in range(MAX_COLUMNS + 1))
    with pytest.raises(TooManyColumns):
        write_rows(storage, rows)
    assert list(storage.list_objects("uploads/")) == []


def test_an_upload_expires_its_ttl_after_it_was_made(storage: Storage, upload: str) -> None:
    index = read_index(storage, upload)
    assert index.expires_at(3600) == index.created_at + timedelta(hours=1)
    assert check_live(index, 3600) is index
    with pytest.raises(UploadExpired):
        check_live(index, 3600, now=index.created_at + timedelta(hours=1))
    assert issubclass(UploadExpired, UploadNotFound)  # to whoever only asks "is it there"


def test_stale_uploads_are_those_untouched_since_the_cutoff(storage: Storage) -> None:
    old = write_rows(storage, [{"n": 1}]).upload_id
    partial = new_upload_id()  # rows written, index never: a gateway died mid-upload
    storage.put_bytes(rows_key(partial), b'{"n": 1}\n')
    time.sleep(1)
    cutoff = datetime.now(UTC)
    time.sleep(1.2)  # S3 may report times cut to the second
    fresh = write_rows(storage, [{"n": 2}]).upload_id
    storage.put_bytes("uploads/not-an-upload.txt", b"")  # not in an upload's folder: ignored

    assert set(stale_uploads(storage, cutoff)) == {old, partial}
    assert set(stale_uploads(storage, cutoff - timedelta(minutes=1))) == set()
    everything = set(stale_uploads(storage, datetime.now(UTC) + timedelta(seconds=2)))
    assert everything == {old, partial, fresh}
