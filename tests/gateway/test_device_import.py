"""The import parser and COPY formatting, without a server: chunking, limits, odd input."""

import json

import pytest
from starlette.datastructures import Headers

from services.common.store.devices import copy_text
from services.gateway.devices.importer import MAX_ERRORS, MAX_LINE_BYTES, RowParser, import_format
from services.gateway.errors import (
    InvalidImportHeader,
    UnsupportedContentEncoding,
    UnsupportedImportType,
)
from services.gateway.line_reader import request_format


def parse(fmt: str, body: bytes, chunk: int) -> tuple[list[tuple[object, ...]], RowParser]:
    parser = RowParser("csv" if fmt == "csv" else "ndjson")
    rows = []
    for at in range(0, len(body), chunk):
        rows += parser.feed(body[at : at + chunk])
    rows += parser.close()
    return rows, parser


BODY = (
    (
        "\ufeff"
        + "\r\n".join(
            [
                json.dumps({"token": "a", "platform": "ios", "user_id": "ü-1", "topics": ["x"]}),
                "",
                "{bad",
                json.dumps({"token": "b", "platform": "web", "topics": None}),
                "\xff-not-utf8-placeholder",
                json.dumps({"token": "c", "platform": "android", "user_id": None}),
            ]
        )
    )
    .encode()
    .replace("\xff-not-utf8-placeholder".encode(), b"\xff\xfe")
)


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 10_000])
def test_rows_and_line_numbers_do_not_depend_on_chunking(chunk: int) -> None:
    rows, parser = parse("ndjson", BODY, chunk)
    assert rows == [
        (1, "a", "ios", "ü-1", ["x"]),
        (4, "b", "web", None, None),
        (6, "c", "android", None, None),
    ]
    assert [e["line"] for e in parser.errors] == [3, 5]
    assert parser.errors[1]["error"] == "the line is not valid UTF-8"
    assert (parser.received, parser.rejected) == (5, 2)


@pytest.mark.parametrize("chunk", [1000, 70_000, 300_000])
def test_an_overlong_line_is_rejected_without_being_buffered(chunk: int) -> None:
    long_line = b'{"token": "' + b"x" * (MAX_LINE_BYTES * 3) + b'", "platform": "ios"}'
    body = (
        b'{"token": "a", "platform": "ios"}\n' + long_line + b'\n{"token": "b", "platform": "ios"}'
    )
    rows, parser = parse("ndjson", body, chunk)
    assert [r[:2] for r in rows] == [(1, "a"), (3, "b")]
    assert parser.errors == [{"line": 2, "error": f"line longer than {MAX_LINE_BYTES} bytes"}]
    assert (parser.received, parser.rejected) == (3, 1)


def test_only_the_first_errors_are_kept_but_all_are_counted() -> None:
    _, parser = parse("ndjson", b"nope\n" * (MAX_ERRORS + 5), 4096)
    assert parser.rejected == MAX_ERRORS + 5 and len(parser.errors) == MAX_ERRORS
    assert parser.errors[-1]["line"] == MAX_ERRORS


def test_csv_columns_by_header_name_and_quoted_fields() -> None:
    body = b'platform,topics,token\nios,a;b;;c,t1\nweb,,"t,2"\nweb,"unterminated,t3\n'
    rows, parser = parse("csv", body, 5)
    assert rows == [(2, "t1", "ios", None, ["a", "b", "c"]), (3, "t,2", "web", None, [])]
    assert parser.errors[0]["line"] == 4 and "invalid CSV" in parser.errors[0]["error"]


@pytest.mark.parametrize(
    "header", [b"token\n", b"token,platform,colour\n", b"token,token,platform\n"]
)
def test_an_unusable_csv_header_fails_the_import(header: bytes) -> None:
    with pytest.raises(InvalidImportHeader):
        parse("csv", header + b"t,ios\n", 100)


def test_content_types() -> None:
    assert import_format("application/x-ndjson") == "ndjson"
    assert import_format("text/csv; charset=utf-8") == "csv"
    assert import_format("application/json") is None
    assert import_format(None) is None


def test_a_body_is_read_only_with_a_known_type_and_no_content_coding() -> None:
    def headers(*pairs: tuple[str, str]) -> Headers:
        return Headers(raw=[(k.lower().encode(), v.encode()) for k, v in pairs])

    csv = ("Content-Type", "text/csv; charset=utf-8")
    assert request_format(headers(csv)) == "csv"
    assert request_format(headers(csv, ("Content-Encoding", " Identity "))) == "csv"
    with pytest.raises(UnsupportedImportType) as caught:
        request_format(headers(("Content-Type", "application/json")))
    assert caught.value.code == "unsupported_media_type"
    for codings in [("gzip",), ("identity", "gzip"), ("identity, x-gzip",), ("br",)]:
        sent = headers(csv, *(("Content-Encoding", coding) for coding in codings))
        with pytest.raises(UnsupportedContentEncoding) as refused:
            request_format(sent)
        assert (refused.value.status_code, refused.value.code) == (
            415,
            "unsupported_content_encoding",
        )
        assert refused.value.headers == {"Accept-Encoding": "identity"}


def test_copy_text_escapes_backslashes_and_quotes_topics() -> None:
    rows = [(7, "to\\ken", "ios", "us\\er", ["NULL", "b"]), (8, "t", "web", None, None)]
    assert copy_text(rows) == (  # type: ignore[arg-type]
        b'7\tto\\\\ken\tios\tus\\\\er\t{"NULL","b"}\n8\tt\tweb\t\\N\t\\N\n'
    )
