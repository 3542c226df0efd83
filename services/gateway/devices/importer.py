"""Bulk device import: NDJSON or CSV lines (see `line_reader`) in; validated device rows out.

CSV: a header row names the columns (`token`, `platform`, optional `user_id` and `topics`, any
order); topics are separated by `;`, and an empty cell means none. Fields may be quoted, but a
record must fit on one line (a token, user id or topic cannot contain a newline anyway).
"""

import json

from services.common.store.devices import Row
from services.gateway.devices.schemas import (
    check_platform,
    check_token,
    check_topics,
    check_user_id,
)
from services.gateway.errors import InvalidImportHeader
from services.gateway.line_reader import (
    MAX_ERRORS,
    MAX_LINE_BYTES,
    MEDIA_TYPES,
    Format,
    LineParser,
    csv_fields,
)
from services.gateway.line_reader import body_format as import_format

__all__ = ["MAX_ERRORS", "MAX_LINE_BYTES", "MEDIA_TYPES", "Row", "RowParser", "import_format"]


FIELDS = frozenset({"token", "platform", "user_id", "topics"})


class RowParser(LineParser[Row]):
    """Feed it the body's chunks in order; it returns the good device rows and keeps the tally."""

    def __init__(self, fmt: Format) -> None:
        super().__init__(fmt)
        self._columns: dict[str, int] = {}  # CSV: column index by name

    def parse_header(self, line: str) -> None:
        self._columns = _csv_header(line)

    def parse_ndjson(self, number: int, line: str) -> Row:
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

    def parse_csv(self, number: int, line: str) -> Row:
        columns = self._columns
        fields = csv_fields(line)
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


def _csv_header(line: str) -> dict[str, int]:
    try:
        names = [name.strip().lower() for name in csv_fields(line)]
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
