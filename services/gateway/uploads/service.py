"""Data uploads: a streamed NDJSON or CSV body, normalised to JSONL in storage with its index.

The body is parsed as it arrives (`line_reader`); good rows are re-encoded as compact JSON
lines and written to storage in ~1 MiB batches on a worker thread, at most one batch in
flight while the next is parsed, so memory stays bounded and the event loop never waits on
storage. A row is a JSON object whose values are scalars (string, number, boolean, null); CSV
rows map header names to the cells as strings. Nothing is recorded in Postgres: the index in
storage is the record (see services.common.rowfiles). A failed, oversized or empty upload,
or one whose rows bring more distinct keys than `max_columns`, leaves nothing behind.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from json.encoder import encode_basestring
from typing import Any

from services.common import rowfiles
from services.common.rowfiles import MAX_COLUMNS, IndexBuilder, TooManyColumns, UploadIndex
from services.common.storage import ObjectWriter, Storage
from services.gateway.errors import (
    InvalidImportHeader,
    NoValidRows,
    UploadNotFound,
    UploadTooLarge,
    UploadTooWide,
)
from services.gateway.line_reader import Format, LineParser, csv_fields

log = logging.getLogger(__name__)

WRITE_BATCH_BYTES = 1024 * 1024
_NESTED = (dict, list)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


class UploadParser(LineParser[bytes]):
    """Lines in, JSONL-encoded rows out; records the columns it sees in `index`.

    A good NDJSON line is stored as it came (minus a trailing CR): it decodes to the same
    row, and re-encoding would cost a third of the parse time. CSV rows are encoded directly
    from the cells (every value a string), without building a dict.
    """

    def __init__(self, fmt: Format, index: IndexBuilder) -> None:
        super().__init__(fmt)
        self.index = index
        self._columns: list[str] = []
        self._keys: list[str] = []

    def parse_header(self, line: str) -> None:
        try:
            names = [name.strip() for name in csv_fields(line)]
        except ValueError as exc:
            raise InvalidImportHeader(f"the CSV header is not valid CSV: {exc}") from None
        if not all(names) or len(set(names)) != len(names):
            raise InvalidImportHeader(
                f"the CSV header must name every column once; got {','.join(names)!r}"
            )
        self._columns = names
        self._keys = [encode_basestring(name) + ":" for name in names]  # `"name":`
        self._see_keys(tuple(names))

    def parse_ndjson(self, number: int, line: str) -> bytes:
        start = 0 if not line[0].isspace() else len(line) - len(line.lstrip())
        try:
            row, end = _DECODER.raw_decode(line, start)
            if end != len(line) and not line[end:].isspace():
                _DECODER.decode(line)  # raises, saying what follows the value
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"invalid JSON: {exc}") from None
        if type(row) is not dict:
            raise ValueError("expected a JSON object")
        # Only a line with a `[` or a second `{` can hold a nested value.
        if "[" in line or line.count("{") > 1:
            for key, value in row.items():
                if isinstance(value, _NESTED):
                    raise ValueError(f"{key!r} is not a string, number, boolean or null")
        self._see_keys(tuple(row))
        return line.encode() + b"\n"

    def _see_keys(self, keys: tuple[str, ...]) -> None:
        try:
            self.index.see_keys(keys)
        except TooManyColumns as exc:  # the whole upload is refused, not this line
            raise UploadTooWide(str(exc)) from None

    def parse_csv(self, number: int, line: str) -> bytes:
        fields = csv_fields(line)
        if len(fields) != len(self._columns):
            raise ValueError(f"expected {len(self._columns)} fields, got {len(fields)}")
        cells = [
            key + encode_basestring(cell) for key, cell in zip(self._keys, fields, strict=True)
        ]
        return ("{" + ",".join(cells) + "}\n").encode()


class UploadStore:
    """Uploads as the gateway writes and reads them."""

    def __init__(
        self, storage: Storage, max_bytes: int, ttl_s: int, max_columns: int = MAX_COLUMNS
    ) -> None:
        self.storage = storage
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self.max_columns = max_columns

    async def receive(
        self, chunks: AsyncIterator[bytes], fmt: Format
    ) -> tuple[UploadIndex, list[dict[str, Any]]]:
        """Store the stream's good rows as a new upload; its index and the kept line errors.

        UploadTooLarge past max_bytes, UploadTooWide past max_columns, NoValidRows if no line
        was a row; nothing is kept then.
        """
        upload_id = rowfiles.new_upload_id()
        builder = IndexBuilder(self.max_columns)
        parser = UploadParser(fmt, builder)
        writer = await asyncio.to_thread(self.storage.open_writer, rowfiles.rows_key(upload_id))
        batch = _Batcher(writer)
        received = 0
        try:
            async for chunk in chunks:
                received += len(chunk)
                if received > self.max_bytes:
                    raise UploadTooLarge(f"uploads are limited to {self.max_bytes} bytes")
                await batch.add(parser.feed(chunk), builder)
            await batch.add(parser.close(), builder)
            await batch.flush()
            if builder.rows == 0:
                raise NoValidRows(
                    "no line of the upload is a valid row", parser.rejected, parser.errors
                )
            await asyncio.to_thread(writer.commit)
            index = builder.build(upload_id, fmt, received, parser.rejected)
            await asyncio.to_thread(rowfiles.write_index, self.storage, index)
        except BaseException:
            await batch.settle()
            try:
                await asyncio.to_thread(self._discard, writer, upload_id)
            except Exception:  # the upload's own error is the one to report
                log.exception("could not discard failed upload %s", upload_id)
            raise
        log.info(
            "upload %s: %d rows, %d rejected, %d bytes",
            upload_id,
            index.rows,
            index.rejected,
            received,
        )
        return index, parser.errors

    def _discard(self, writer: ObjectWriter, upload_id: str) -> None:
        writer.abort()
        self.storage.delete_prefix(rowfiles.upload_prefix(upload_id))

    async def get(self, upload_id: str) -> UploadIndex:
        """The upload's index; UploadNotFound (404) if there is none or it expired."""
        try:
            index = await asyncio.to_thread(rowfiles.read_index, self.storage, upload_id)
            return rowfiles.check_live(index, self.ttl_s)
        except rowfiles.UploadExpired as exc:
            raise UploadNotFound(str(exc)) from None
        except rowfiles.UploadNotFound:
            raise UploadNotFound("no upload with this id") from None

    def view(self, index: UploadIndex) -> dict[str, Any]:
        """What clients see of an upload: its index and when it expires."""
        return index.model_dump() | {"expires_at": index.expires_at(self.ttl_s)}


async def store_rows(
    storage: Storage, rows: Iterable[dict[str, Any]], max_columns: int = MAX_COLUMNS
) -> str:
    """Store already-validated rows (a report's inline rows) as a new upload; its id.

    TooManyColumns past `max_columns` distinct keys (nothing is kept then).
    """
    index = await asyncio.to_thread(rowfiles.write_rows, storage, rows, max_columns=max_columns)
    return index.upload_id


class _Batcher:
    """Collects encoded rows; writes ~1 MiB at a time on a thread, one write in flight."""

    def __init__(self, writer: ObjectWriter) -> None:
        self._writer = writer
        self._lines: list[bytes] = []
        self._size = 0
        self._writing: asyncio.Future[None] | None = None

    async def add(self, lines: list[bytes], builder: IndexBuilder) -> None:
        if not lines:
            return
        before = builder.stored_bytes
        builder.add(lines)
        self._lines += lines
        self._size += builder.stored_bytes - before
        if self._size >= WRITE_BATCH_BYTES:
            await self._write()

    async def flush(self) -> None:
        if self._lines:
            await self._write()
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write(self) -> None:
        data = b"".join(self._lines)
        self._lines, self._size = [], 0
        if self._writing is not None:
            await self._writing
        self._writing = asyncio.ensure_future(asyncio.to_thread(self._writer.write, data))

    async def settle(self) -> None:
        """Wait out a write in flight (its error, if any, is not the one to report)."""
        if self._writing is not None:
            with contextlib.suppress(Exception):
                await self._writing
            self._writing = None
