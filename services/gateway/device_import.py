"""Bulk import parsing: NDJSON or CSV bytes in, as they arrive; validated rows and line errors out.

Memory stays bounded whatever the upload's size: only the unfinished last line of a chunk is
kept, a line over 64 KiB is rejected and skipped without being buffered, and only the first
1,000 errors are kept (all are counted). Line numbers are 1-based lines of the uploaded file
(the CSV header is line 1); blank lines are skipped and not counted.

CSV: a header row names the columns (`token`, `platform`, optional `user_id` and `topics`, any
order); topics are separated by `;`, and an empty cell means none. Fields may be quoted, but a
record must fit on one line (a token, user id or topic cannot contain a newline anyway).
"""

import csv
import json
from typing import Any, Literal

from services.gateway.device_schemas import (
    check_platform,
    check_token,
    check_topics,
    check_user_id,
)
from services.gateway.errors import InvalidImportHeader

MAX_LINE_BYTES = 64 * 1024
MAX_ERRORS = 1000

Format = Literal["ndjson", "csv"]
# (line number, token, platform, user_id, topics or None to keep the device's topics)
Row = tuple[int, str, str, str | None, list[str] | None]

MEDIA_TYPES: dict[str, Format] = {
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "text/csv": "csv",
}
FIELDS = frozenset({"token", "platform", "user_id", "topics"})


def import_format(content_type: str | None) -> Format | None:
    """The import format a Content-Type names, None for any other."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return MEDIA_TYPES.get(media)


class RowParser:
    """Feed it the body's chunks in order; it returns the good rows and keeps the tally."""

    def __init__(self, fmt: Format) -> None:
        self.format = fmt
        self.received = 0
        self.rejected = 0
        self.errors: list[dict[str, Any]] = []
        self._line = 0  # lines consumed so far
        self._pending = b""  # the unfinished last line
        self._overlong = False  # skipping the rest of a line that was too long
        self._columns: dict[str, int] | None = None  # CSV: column index by name

    def feed(self, chunk: bytes) -> list[Row]:
        """The rows of every line this chunk completes."""
        if self._overlong:
            cut = chunk.find(b"\n")
            if cut < 0:
                return []
            self._overlong = False
            self._line += 1
            chunk = chunk[cut + 1 :]
        data = self._pending + chunk if self._pending else chunk
        cut = data.rfind(b"\n")
        rows: list[Row] = []
        if cut < 0:
            self._pending = data
        else:
            self._pending = data[cut + 1 :]
            rows = self._parse(data[:cut])
        if len(self._pending) > MAX_LINE_BYTES:
            self._pending = b""
            self._overlong = True
            self._too_long(self._line + 1)
        return rows

    def close(self) -> list[Row]:
        """The rows of a last line that had no newline."""
        if self._overlong:
            self._overlong = False
            self._line += 1
            return []
        data, self._pending = self._pending, b""
        return self._parse(data) if data else []

    def _parse(self, block: bytes) -> list[Row]:
        lines: list[str | None]
        try:
            lines = list(block.decode().split("\n"))
        except UnicodeDecodeError:
            lines = [_decode(raw) for raw in block.split(b"\n")]
        first = self._line + 1
        self._line += len(lines)
        parse = self._ndjson if self.format == "ndjson" else self._csv
        rows: list[Row] = []
        for number, line in enumerate(lines, first):
            if line is None:
                self.received += 1
                self._reject(number, "the line is not valid UTF-8")
                continue
            if line.endswith("\r"):
                line = line[:-1]
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if not line or line.isspace():
                continue
            if self.format == "csv" and self._columns is None:
                self._columns = _csv_header(line)
                continue
            self.received += 1
            if len(line) > MAX_LINE_BYTES:
                self._too_long(number, counted=True)
                continue
            try:
                rows.append(parse(number, line))
            except ValueError as exc:
                self._reject(number, str(exc))
        return rows

    def _ndjson(self, number: int, line: str) -> Row:
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"invalid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("expected a JSON object")
        if not obj.keys() <= FIELDS:
            raise ValueError(f"unknown field(s): {', '.join(sorted(obj.keys() - FIELDS))}")
        token, platform = obj.get("token"), obj.get("platform")
        user_id, topics = obj.get("user_id"), obj.get("topics")
        if not isinstance(token, str):
            raise ValueError("token is required and must be a string")
        if not isinstance(platform, str):
            raise ValueError("platform is required and must be a string")
        if user_id is not None and not isinstance(user_id, str):
            raise ValueError("user_id must be a string or null")
        if topics is not None and not isinstance(topics, list):
            raise ValueError("topics must be a list of strings or null")
        return (
            number,
            check_token(token),
            check_platform(platform),
            None if user_id is None else check_user_id(user_id),
            None if topics is None else check_topics(topics),
        )

    def _csv(self, number: int, line: str) -> Row:
        columns = self._columns
        assert columns is not None
        fields = line.split(",") if '"' not in line else _csv_fields(line)
        if len(fields) != len(columns):
            raise ValueError(f"expected {len(columns)} fields, got {len(fields)}")
        user_at, topics_at = columns.get("user_id"), columns.get("topics")
        user_id = fields[user_at] if user_at is not None else ""
        topics = None
        if topics_at is not None:
            topics = check_topics([t for t in fields[topics_at].split(";") if t])
        return (
            number,
            check_token(fields[columns["token"]]),
            check_platform(fields[columns["platform"]]),
            check_user_id(user_id) if user_id else None,
            topics,
        )

    def _too_long(self, number: int, *, counted: bool = False) -> None:
        if not counted:
            self.received += 1
        self._reject(number, f"line longer than {MAX_LINE_BYTES} bytes")

    def _reject(self, number: int, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": number, "error": error})


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def _csv_fields(line: str) -> list[str]:
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise ValueError(f"invalid CSV: {exc}") from None


def _csv_header(line: str) -> dict[str, int]:
    try:
        names = [name.strip().lower() for name in _csv_fields(line)]
    except ValueError as exc:
        raise InvalidImportHeader(f"the CSV header is not valid CSV: {exc}") from None
    missing = {"token", "platform"} - set(names)
    unknown = set(names) - FIELDS
    if missing or unknown or len(set(names)) != len(names):
        raise InvalidImportHeader(
            "the CSV header must name token and platform, optionally user_id and topics, "
            f"each once; got {','.join(names)!r}"
        )
    return {name: at for at, name in enumerate(names)}
