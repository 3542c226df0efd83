"""Uploaded data files in storage, and reading their rows back in order, in ranges.

Layout: `uploads/<upload_id>/rows.jsonl` holds the good rows, one JSON object per line
(`\\n`-terminated, in upload order, whatever the uploaded format was), and
`uploads/<upload_id>/index.json` describes them (UploadIndex). The index is written last: an
upload exists once its index does. Row numbers are 0-based positions among the good rows;
`offsets[i]` is the byte offset of row `i * offsets_every` in rows.jsonl, so reading rows
r0..r1 of millions is one ranged read starting within 1,000 rows of r0.

An upload brings at most `OFFLOAD_UPLOAD_MAX_COLUMNS` (1,000) distinct keys: IndexBuilder
raises TooManyColumns for the row that would pass it, before that row is stored.

Uploads expire `OFFLOAD_UPLOAD_TTL_S` after they were made: the gateway then answers as if
they did not exist, and pdfgen's periodic cleanup deletes them (and abandoned partial ones)
a grace period later, unless a report still being built reads them.
"""

import itertools
import json
import uuid
from collections.abc import Generator, Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from services.common.config import UPLOAD_MAX_COLUMNS
from services.common.storage import ObjectNotFound, Storage

ROWS_PER_OFFSET = 1000
MAX_COLUMNS = UPLOAD_MAX_COLUMNS
# Row shapes (key tuples) remembered to skip re-reading keys; ragged rows stop the memo.
MAX_SHAPES = 10_000


class UploadNotFound(ObjectNotFound):
    """No upload has this id (or it is not a valid upload id)."""


class UploadExpired(UploadNotFound):
    """The upload is older than its time to live."""


class TooManyColumns(Exception):
    """The rows bring more distinct keys than an upload may have.

    Not a ValueError: a line parser must not take it for one bad line.
    """

    def __init__(self, max_columns: int) -> None:
        super().__init__(f"the upload has more than {max_columns} distinct columns (keys)")
        self.max_columns = max_columns


class UploadIndex(BaseModel):
    """What `uploads/<id>/index.json` holds."""

    upload_id: str
    format: Literal["ndjson", "csv"]
    rows: int = Field(description="Good rows stored, in order")
    bytes: int = Field(description="Size of the uploaded file as received")
    stored_bytes: int = Field(description="Size of rows.jsonl")
    rejected: int = Field(default=0, description="Lines of the upload that were not rows")
    columns: list[str] = Field(description="Keys seen in the rows, in first-seen order")
    offsets_every: int = ROWS_PER_OFFSET
    offsets: list[int] = Field(description="Byte offset of rows 0, offsets_every, 2 * ...")
    created_at: datetime

    def expires_at(self, ttl_s: int) -> datetime:
        """When this upload stops being usable for new reports."""
        return self.created_at + timedelta(seconds=ttl_s)


def check_live(index: UploadIndex, ttl_s: int, now: datetime | None = None) -> UploadIndex:
    """The index if the upload has not expired; UploadExpired otherwise."""
    if index.expires_at(ttl_s) <= (now or datetime.now(UTC)):
        raise UploadExpired(f"upload {index.upload_id} expired; upload the data again")
    return index


def stale_uploads(storage: Storage, cutoff: datetime) -> Iterator[str]:
    """Ids of the uploads none of whose objects changed since `cutoff`, complete or not."""
    objects = (o for o in storage.list_objects("uploads/") if o.key.count("/") >= 2)
    for upload_id, group in itertools.groupby(objects, key=lambda o: o.key.split("/")[1]):
        if max(o.modified for o in group) < cutoff:
            yield upload_id


def new_upload_id() -> str:
    """A fresh upload id: a UUID4 as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def canonical_id(upload_id: str) -> str:
    """The canonical spelling (32 hex digits) of an upload id; UploadNotFound if not a UUID."""
    try:
        return uuid.UUID(str(upload_id)).hex
    except ValueError:
        raise UploadNotFound(f"no upload {upload_id!r}") from None


def upload_prefix(upload_id: str) -> str:
    """The key prefix of everything stored for an upload."""
    return f"uploads/{canonical_id(upload_id)}/"


def rows_key(upload_id: str) -> str:
    """The key of an upload's rows (JSONL)."""
    return upload_prefix(upload_id) + "rows.jsonl"


def index_key(upload_id: str) -> str:
    """The key of an upload's index (JSON)."""
    return upload_prefix(upload_id) + "index.json"


def encode_row(row: dict[str, Any]) -> bytes:
    """One row as a JSONL line."""
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


class IndexBuilder:
    """Tracks rows, offsets and columns while an upload's JSONL lines are written in order.

    At most `max_columns` distinct keys: `see_keys` raises TooManyColumns for a row past it.
    """

    def __init__(self, max_columns: int = MAX_COLUMNS) -> None:
        self.max_columns = max_columns
        self.rows = 0
        self.stored_bytes = 0
        self.offsets: list[int] = []
        self._columns: dict[str, None] = {}
        self._shapes: set[tuple[str, ...]] = set()

    @property
    def columns(self) -> list[str]:
        """Keys seen so far, in first-seen order."""
        return list(self._columns)

    def see_keys(self, keys: tuple[str, ...]) -> None:
        """Record a row's keys (cheap for the row shapes seen before); TooManyColumns if they
        bring the distinct keys past `max_columns` (none of them is recorded then)."""
        if keys in self._shapes:
            return
        new = [key for key in dict.fromkeys(keys) if key not in self._columns]
        if len(self._columns) + len(new) > self.max_columns:
            raise TooManyColumns(self.max_columns)
        self._columns.update(dict.fromkeys(new))
        if len(self._shapes) >= MAX_SHAPES:  # ragged rows: stop remembering shapes
            self._shapes.clear()
        self._shapes.add(keys)

    def add(self, lines: Sequence[bytes]) -> None:
        """Account for these lines, about to be appended to rows.jsonl."""
        at, count = 0, len(lines)
        while at < count:
            row = self.rows + at
            if row % ROWS_PER_OFFSET == 0:
                self.offsets.append(self.stored_bytes)
            upto = min(count, at + ROWS_PER_OFFSET - row % ROWS_PER_OFFSET)
            self.stored_bytes += sum(map(len, lines[at:upto]))
            at = upto
        self.rows += count

    def build(
        self, upload_id: str, fmt: Literal["ndjson", "csv"], received: int, rejected: int
    ) -> UploadIndex:
        """The index of what was added."""
        return UploadIndex(
            upload_id=canonical_id(upload_id),
            format=fmt,
            rows=self.rows,
            bytes=received,
            stored_bytes=self.stored_bytes,
            rejected=rejected,
            columns=self.columns,
            offsets=self.offsets,
            created_at=datetime.now(UTC),
        )


def write_index(storage: Storage, index: UploadIndex) -> None:
    """Store an upload's index (which makes the upload visible)."""
    storage.put_bytes(index_key(index.upload_id), index.model_dump_json().encode())


def read_index(storage: Storage, upload_id: str) -> UploadIndex:
    """An upload's index; UploadNotFound if there is no such upload."""
    key = index_key(upload_id)
    try:
        with storage.open_reader(key) as stream:
            data = stream.read()
    except ObjectNotFound:
        raise UploadNotFound(f"no upload {upload_id!r}") from None
    return UploadIndex.model_validate_json(data)


def write_rows(
    storage: Storage,
    rows: Iterable[dict[str, Any]],
    upload_id: str | None = None,
    *,
    max_columns: int = MAX_COLUMNS,
) -> UploadIndex:
    """Store rows (already validated dicts) as an upload; its index. For inline report rows.

    TooManyColumns past `max_columns` distinct keys; nothing is kept then.
    """
    upload_id = canonical_id(upload_id) if upload_id else new_upload_id()
    builder = IndexBuilder(max_columns)
    batch: list[bytes] = []
    with storage.open_writer(rows_key(upload_id)) as writer:
        for row in rows:
            builder.see_keys(tuple(row))
            batch.append(encode_row(row))
            if len(batch) >= ROWS_PER_OFFSET:
                builder.add(batch)
                writer.write(b"".join(batch))
                batch = []
        builder.add(batch)
        writer.write(b"".join(batch))
    index = builder.build(upload_id, "ndjson", builder.stored_bytes, 0)
    write_index(storage, index)
    return index


def iter_rows(
    storage: Storage,
    upload_id: str,
    first_row: int = 0,
    count: int | None = None,
    *,
    index: UploadIndex | None = None,
) -> Generator[dict[str, Any], None, None]:
    """Rows first_row.. (at most count of them) of an upload, in order, streamed.

    One ranged read, starting at the indexed offset at or before first_row and ending at the
    one after the last row wanted. Pass `index` to save reading it again.
    """
    if first_row < 0 or (count is not None and count < 0):
        raise ValueError("first_row and count must not be negative")
    index = index or read_index(storage, upload_id)
    last = index.rows if count is None else min(index.rows, first_row + count)
    return _rows(storage, index, first_row, last)


def _rows(
    storage: Storage, index: UploadIndex, first_row: int, last: int
) -> Generator[dict[str, Any], None, None]:
    if first_row >= last:
        return
    every = index.offsets_every
    block = first_row // every
    start = index.offsets[block]
    end_block = -(-last // every)  # the indexed row at or after `last`
    end = index.offsets[end_block] if end_block < len(index.offsets) else None
    skip = first_row - block * every
    wanted = last - first_row
    with storage.open_reader(rows_key(index.upload_id), start, end) as stream:
        for line in stream:
            if skip:
                skip -= 1
                continue
            yield json.loads(line)
            wanted -= 1
            if not wanted:
                return
