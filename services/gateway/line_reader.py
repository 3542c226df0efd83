"""Streamed NDJSON or CSV bodies: bytes in as they arrive, numbered lines to a row parser.

Shared by the device import and data uploads. Memory stays bounded whatever the body's size:
only the unfinished last line of a chunk is kept, a line over `max_line_bytes` is rejected and
skipped without being buffered, and only the first 1,000 errors are kept (all are counted).
Line numbers are 1-based lines of the uploaded file (a CSV header is line 1); blank lines are
skipped and not counted. A leading byte-order mark and `\\r\\n` line ends are accepted.

CSV: the first non-blank line is the header, handed to `parse_header`. Fields may be quoted,
but a record must fit on one line.
"""

import csv
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field
from starlette.datastructures import Headers

from services.gateway.errors import UnsupportedContentEncoding, UnsupportedImportType

MAX_LINE_BYTES = 64 * 1024
MAX_ERRORS = 1000

Format = Literal["ndjson", "csv"]

MEDIA_TYPES: dict[str, Format] = {
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
    "application/jsonl": "ndjson",
    "text/csv": "csv",
}

RowT = TypeVar("RowT")


def body_format(content_type: str | None) -> Format | None:
    """The format a Content-Type names, None for any other."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return MEDIA_TYPES.get(media)


def request_format(headers: Headers) -> Format:
    """The format of a request body to read as lines; 415 for another type or a compressed body.

    Nothing in the gateway decodes a request body (Starlette and uvicorn do not either), so a
    Content-Encoding other than identity is refused before a byte is read: read as lines, a
    gzip body would be rejected line by line, or stored as garbage rows.
    """
    fmt = body_format(headers.get("content-type"))
    if fmt is None:
        raise UnsupportedImportType(f"send one of {', '.join(MEDIA_TYPES)}")
    codings = [
        coding.strip().lower()
        for value in headers.getlist("content-encoding")
        for coding in value.split(",")
    ]
    if any(coding not in ("", "identity") for coding in codings):
        sent = ", ".join(headers.getlist("content-encoding"))
        raise UnsupportedContentEncoding(
            f"Content-Encoding {sent!r} is not accepted: send the body uncompressed",
            headers={"Accept-Encoding": "identity"},
        )
    return fmt


class LineParser(Generic[RowT]):
    """Feed it the body's chunks in order; it returns the good rows and keeps the tally.

    Subclasses turn one line into a row (`parse_ndjson`, `parse_csv`, raising ValueError with
    the reason for a bad line) and read the CSV header (`parse_header`).
    """

    def __init__(self, fmt: Format, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.format = fmt
        self.max_line_bytes = max_line_bytes
        self.received = 0
        self.rejected = 0
        self.errors: list[dict[str, Any]] = []
        self.header_seen = fmt != "csv"
        self._line = 0  # lines consumed so far
        self._pending = b""  # the unfinished last line
        self._overlong = False  # skipping the rest of a line that was too long

    def parse_header(self, line: str) -> None:
        """Read the CSV header line (raise a GatewayError if it is unusable)."""
        raise NotImplementedError

    def parse_ndjson(self, number: int, line: str) -> RowT:
        """The row of one NDJSON line; ValueError with the reason if it is bad."""
        raise NotImplementedError

    def parse_csv(self, number: int, line: str) -> RowT:
        """The row of one CSV record line; ValueError with the reason if it is bad."""
        raise NotImplementedError

    def feed(self, chunk: bytes) -> list[RowT]:
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
        rows: list[RowT] = []
        if cut < 0:
            self._pending = data
        else:
            self._pending = data[cut + 1 :]
            rows = self._parse(data[:cut])
        if len(self._pending) > self.max_line_bytes:
            self._pending = b""
            self._overlong = True
            self._too_long(self._line + 1)
        return rows

    def close(self) -> list[RowT]:
        """The rows of a last line that had no newline."""
        if self._overlong:
            self._overlong = False
            self._line += 1
            return []
        data, self._pending = self._pending, b""
        return self._parse(data) if data else []

    def _parse(self, block: bytes) -> list[RowT]:
        lines: list[str | None]
        try:
            lines = list(block.decode().split("\n"))
        except UnicodeDecodeError:
            lines = [_decode(raw) for raw in block.split(b"\n")]
        first = self._line + 1
        self._line += len(lines)
        parse = self.parse_ndjson if self.format == "ndjson" else self.parse_csv
        rows: list[RowT] = []
        for number, line in enumerate(lines, first):
            if line is None:
                self.received += 1
                self.reject(number, "the line is not valid UTF-8")
                continue
            if line.endswith("\r"):
                line = line[:-1]
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            if not line or line.isspace():
                continue
            if not self.header_seen:
                self.parse_header(line)
                self.header_seen = True
                continue
            self.received += 1
            if len(line) > self.max_line_bytes:
                self._too_long(number, counted=True)
                continue
            try:
                rows.append(parse(number, line))
            except ValueError as exc:
                self.reject(number, str(exc))
        return rows

    def _too_long(self, number: int, *, counted: bool = False) -> None:
        if not counted:
            self.received += 1
        self.reject(number, f"line longer than {self.max_line_bytes} bytes")

    def reject(self, number: int, error: str) -> None:
        """Count a bad line, keeping its error if fewer than MAX_ERRORS are kept."""
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"line": number, "error": error})


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None


def csv_fields(line: str) -> list[str]:
    """The fields of one CSV line; ValueError if it is not valid CSV."""
    if '"' not in line:
        return line.split(",")
    try:
        return next(csv.reader([line], strict=True))
    except (csv.Error, StopIteration) as exc:
        raise ValueError(f"invalid CSV: {exc}") from None


def openapi_body(ndjson_example: str, csv_example: str) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads NDJSON or CSV lines."""
    return {
        "required": True,
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}, "example": ndjson_example},
            "text/csv": {"schema": {"type": "string"}, "example": csv_example},
        },
    }


class LineError(BaseModel):
    """A rejected line of an uploaded file."""

    line: int = Field(description="1-based line of the uploaded file (a CSV header is line 1)")
    error: str
