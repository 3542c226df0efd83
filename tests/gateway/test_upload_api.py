"""Data uploads through a real gateway process into local storage: rows, bad lines, limits."""

import gzip
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common.rowfiles import iter_rows, read_index, write_index
from services.common.storage import LocalStorage, ObjectNotFound, S3Storage
from tests.conftest import api
from tests.support.processes import PeakRss, Service, start_gateway
from tests.support.s3 import CREDENTIALS, start_s3

pytestmark = pytest.mark.integration

NDJSON = "application/x-ndjson"


@dataclass
class Gateway:
    service: Service
    base_url: str
    storage: LocalStorage


def _gateway(factory: pytest.TempPathFactory, **env: str) -> Iterator[Gateway]:
    root = factory.mktemp("storage")
    service, base_url = start_gateway(
        factory.mktemp("logs"), OFFLOAD_STORAGE_URL=root.as_uri(), **env
    )
    try:
        yield Gateway(service, base_url, LocalStorage(root))
    finally:
        service.stop()


@pytest.fixture(scope="module")
def gateway(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from _gateway(tmp_path_factory)


@pytest.fixture(scope="module")
def small_gateway(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that takes uploads of up to 1 MB."""
    yield from _gateway(tmp_path_factory, OFFLOAD_UPLOAD_MAX_BYTES="1000000")


@pytest.fixture(scope="module")
def narrow_gateway(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway that takes uploads of up to 3 columns."""
    yield from _gateway(tmp_path_factory, OFFLOAD_UPLOAD_MAX_COLUMNS="3")


def chunked(data: bytes, size: int = 7_001) -> Iterator[bytes]:
    """An upload in odd-sized chunks, so lines straddle chunk boundaries."""
    for at in range(0, len(data), size):
        yield data[at : at + size]


def upload(
    base_url: str, body: bytes | Iterable[bytes], content_type: str = NDJSON, **kw: Any
) -> httpx.Response:
    with api(base_url) as client:
        return client.post(
            "/v1/uploads",
            content=chunked(body) if isinstance(body, bytes) else body,
            headers={"Content-Type": content_type},
            timeout=300,
            **kw,
        )


def stored_uploads(gateway: Gateway) -> list[str]:
    folder = gateway.storage.root / "uploads"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_ndjson_upload_keeps_good_rows_in_order_and_reports_bad_lines(gateway: Gateway) -> None:
    lines = [
        '{"region": "north", "amount": 12.5, "ok": true}',  # 1
        "",  # 2: blank, skipped
        '{"region": "south", "amount": 3}',  # 3
        '{"region": "east", "amount": ',  # 4: bad JSON
        '["not", "an", "object"]',  # 5
        '{"region": "west", "tags": ["nested"]}',  # 6: nested value
        '{"region": "west", "amount": NaN}',  # 7: not JSON
        "\udcff",  # 8: not UTF-8 (patched below)
        '{"region": "ümlaut \\u2603", "note": null, "amount": -1e3}\r',  # 9: new column, CRLF
        '{"region": "west", "meta": {"a": 1}}',  # 10: nested object
        "42",  # 11
    ]
    body = ("\ufeff" + "\n".join(lines)).encode(errors="surrogateescape")
    response = upload(gateway.base_url, body)
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert receipt["rows"] == 3 and receipt["rejected"] == 7
    assert receipt["bytes"] == len(body)
    assert receipt["columns"] == ["region", "amount", "ok", "note"]
    assert [e["line"] for e in receipt["errors"]] == [4, 5, 6, 7, 8, 10, 11]
    errors = {e["line"]: e["error"] for e in receipt["errors"]}
    assert errors[4].startswith("invalid JSON")
    assert errors[5] == errors[11] == "expected a JSON object"
    assert errors[6] == "'tags' is not a string, number, boolean or null"
    assert "NaN is not valid JSON" in errors[7]
    assert errors[8] == "the line is not valid UTF-8"

    rows = list(iter_rows(gateway.storage, receipt["upload_id"]))
    assert rows == [
        {"region": "north", "amount": 12.5, "ok": True},
        {"region": "south", "amount": 3},
        {"region": "ümlaut ☃", "note": None, "amount": -1000.0},
    ]
    with api(gateway.base_url) as client:
        summary = client.get(f"/v1/uploads/{receipt['upload_id']}").json()
    assert summary == {k: v for k, v in receipt.items() if k != "errors"}
    assert summary["format"] == "ndjson" and summary["stored_bytes"] > 0


def test_csv_upload_maps_header_names_to_string_cells(gateway: Gateway) -> None:
    body = (
        b"region, amount ,note\r\n"  # 1: names are trimmed
        b"north,12.5,plain\r\n"  # 2
        b'south,3,"with, comma and ""quotes"""\r\n'  # 3
        b"east,1\r\n"  # 4: too few fields
        b'"unterminated,1,x\r\n'  # 5: bad quoting
        b"\r\n"  # 6: blank
        b"west,,\r\n"  # 7: empty cells are empty strings
        b"x,1,2,3"  # 8: too many, and no final newline
    )
    response = upload(gateway.base_url, body, "text/csv; charset=utf-8")
    assert response.status_code == 201, response.text
    receipt = response.json()
    assert (receipt["rows"], receipt["rejected"]) == (3, 3)
    assert receipt["columns"] == ["region", "amount", "note"]
    assert [(e["line"], e["error"][:14]) for e in receipt["errors"]] == [
        (4, "expected 3 fie"),
        (5, "invalid CSV: u"),
        (8, "expected 3 fie"),
    ]
    assert list(iter_rows(gateway.storage, receipt["upload_id"])) == [
        {"region": "north", "amount": "12.5", "note": "plain"},
        {"region": "south", "amount": "3", "note": 'with, comma and "quotes"'},
        {"region": "west", "amount": "", "note": ""},
    ]
    assert read_index(gateway.storage, receipt["upload_id"]).format == "csv"


def test_a_large_upload_is_indexed_for_ranged_reads(gateway: Gateway) -> None:
    body = "".join(json.dumps({"i": i, "group": i // 2500}) + "\n" for i in range(12_345))
    receipt = upload(gateway.base_url, body.encode(), "application/jsonl").json()
    index = read_index(gateway.storage, receipt["upload_id"])
    assert index.rows == 12_345 and len(index.offsets) == 13
    rows = iter_rows(gateway.storage, receipt["upload_id"], 9_990, 20, index=index)
    assert [r["i"] for r in rows] == list(range(9_990, 10_010))


def test_content_types_other_than_ndjson_or_csv_are_415(gateway: Gateway) -> None:
    for content_type in ["application/json", "text/plain", ""]:
        response = upload(gateway.base_url, b'{"a": 1}\n', content_type)
        assert response.status_code == 415, content_type
        assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "gzip, gzip", "identity, gzip"])
def test_compressed_bodies_are_415_not_stored_as_garbage(gateway: Gateway, encoding: str) -> None:
    before = stored_uploads(gateway)
    rows = b"region,amount\n" + b"".join(b"r%d,%d\n" % (i % 7, i) for i in range(20_000))
    body = gzip.compress(rows, mtime=0)  # nothing decodes request bodies: it would be garbage
    with api(gateway.base_url) as client:
        answers = [
            client.post(
                path,
                content=body,
                headers={"Content-Type": content_type, "Content-Encoding": encoding},
            )
            for path, content_type in [("/v1/uploads", "text/csv"), ("/v1/devices/import", NDJSON)]
        ]
    for response in answers:
        assert response.status_code == 415, response.text
        assert response.json()["error"] == {
            "code": "unsupported_content_encoding",
            "message": f"Content-Encoding {encoding!r} is not accepted: send the body uncompressed",
        }
        assert response.headers["accept-encoding"] == "identity"
    assert stored_uploads(gateway) == before


def test_identity_content_encoding_is_a_plain_body(gateway: Gateway) -> None:
    with api(gateway.base_url) as client:
        response = client.post(
            "/v1/uploads",
            content=b'{"a": 1}\n',
            headers={"Content-Type": NDJSON, "Content-Encoding": "Identity"},
        )
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == 1


def test_an_upload_without_a_good_row_is_422_and_leaves_nothing(gateway: Gateway) -> None:
    before = stored_uploads(gateway)
    response = upload(gateway.base_url, b'[1]\n{"a": [2]}\n\nnope', "application/ndjson")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "no_valid_rows" and error["rejected"] == 3
    assert [e["line"] for e in error["errors"]] == [1, 2, 4]

    assert upload(gateway.base_url, b"", NDJSON).status_code == 422
    assert upload(gateway.base_url, b"a,b\n", "text/csv").status_code == 422  # header only
    bad_header = upload(gateway.base_url, b"a,a\n1,2\n", "text/csv")
    assert bad_header.status_code == 422
    assert bad_header.json()["error"]["code"] == "invalid_csv_header"
    assert stored_uploads(gateway) == before


def test_an_upload_with_too_many_distinct_keys_is_422_and_leaves_nothing(
    gateway: Gateway,
) -> None:
    before = stored_uploads(gateway)
    # 20 lines of 60 fresh keys each: the 17th line brings the count past 1,000.
    lines = [
        json.dumps({f"k{line}_{key}": key for key in range(60)}).encode() + b"\n"
        for line in range(20)
    ]
    response = upload(gateway.base_url, b'{"id": 1}\n' + b"".join(lines))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == {
        "code": "too_many_columns",
        "message": "the upload has more than 1000 distinct columns (keys)",
    }

    header = ",".join(f"c{i}" for i in range(1001)).encode()
    wide_csv = upload(gateway.base_url, header + b"\n" + b"1," * 1000 + b"1\n", "text/csv")
    assert wide_csv.status_code == 422, wide_csv.text
    assert wide_csv.json()["error"]["code"] == "too_many_columns"
    assert stored_uploads(gateway) == before

    exactly = {f"c{i}": i for i in range(1000)}
    assert upload(gateway.base_url, json.dumps(exactly).encode() + b"\n").status_code == 201


def test_unknown_uploads_are_404(gateway: Gateway) -> None:
    with api(gateway.base_url) as client:
        for upload_id in ["0" * 32, "not-an-id"]:
            response = client.get(f"/v1/uploads/{upload_id}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "upload_not_found"


def test_an_upload_expires_after_its_ttl(gateway: Gateway) -> None:
    created = upload(gateway.base_url, b'{"region": "north"}\n')
    assert created.status_code == 201, created.text
    receipt = created.json()
    made = datetime.fromisoformat(receipt["created_at"])
    assert datetime.fromisoformat(receipt["expires_at"]) == made + timedelta(days=7)
    upload_id = receipt["upload_id"]
    columns = [{"key": "region", "label": "Region"}]
    report = {"title": "T", "upload_id": upload_id, "columns": columns}

    index = read_index(gateway.storage, upload_id)  # eight days ago, as far as it says
    write_index(gateway.storage, index.model_copy(update={"created_at": made - timedelta(days=8)}))
    with api(gateway.base_url) as client:
        shown = client.get(f"/v1/uploads/{upload_id}")
        refused = client.post("/v1/reports", json=report)
    assert shown.status_code == 404
    assert shown.json()["error"] == {
        "code": "upload_not_found",
        "message": f"upload {upload_id} expired; upload the data again",
    }
    assert refused.status_code == 422, refused.text
    assert "expired; upload the data again" in refused.json()["error"]["message"]


def test_uploads_need_the_api_key(gateway: Gateway) -> None:
    with api(gateway.base_url, key=None) as client:
        answers = [
            client.post("/v1/uploads", content=b'{"a": 1}\n', headers={"Content-Type": NDJSON}),
            client.get(f"/v1/uploads/{'0' * 32}"),
        ]
    with api(gateway.base_url, key="wrong") as client:
        answers.append(client.get(f"/v1/uploads/{'0' * 32}"))
    assert [a.status_code for a in answers] == [401] * 3


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(small_gateway: Gateway) -> None:
    line = b'{"n": 1, "pad": "' + b"x" * 80 + b'"}\n'
    fits = line * (900_000 // len(line))
    assert upload(small_gateway.base_url, fits).status_code == 201

    declared = upload(small_gateway.base_url, line * 20_000)  # Content-Length: refused at once
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "upload_too_large"

    def streamed() -> Iterator[bytes]:  # chunked: refused once the limit is crossed
        for _ in range(15):
            yield line * 1000

    assert upload(small_gateway.base_url, streamed()).status_code == 413
    assert len(stored_uploads(small_gateway)) == 1  # only the one that fit
    tmp_files = list((small_gateway.storage.root / "uploads").rglob(".*"))
    assert tmp_files == []


def test_upload_memory_stays_bounded(gateway: Gateway) -> None:
    pad = "Q" * 120
    template = '{{"id": {i}, "region": "r{r}", "amount": {a}.25, "flag": true, "pad": "{pad}"}}\n'

    def body(rows: int) -> Iterator[bytes]:
        for start in range(0, rows, 1000):
            yield "".join(
                template.format(i=i, r=i % 17, a=i % 1000, pad=pad)
                for i in range(start, start + 1000)
            ).encode()

    rows = 560_000  # ~100 MB
    size = sum(len(chunk) for chunk in body(rows))
    upload(gateway.base_url, body(50_000)).raise_for_status()  # warm up
    started = time.perf_counter()
    with PeakRss(gateway.service.pid) as rss:  # one uvicorn worker: the process itself
        response = upload(gateway.base_url, body(rows))
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.text
    assert response.json()["rows"] == rows and response.json()["bytes"] == size
    growth, baseline = rss.growth, rss.baseline
    print(
        f"\nupload {size / 1e6:.0f} MB, {rows:,} rows in {elapsed:.1f} s: "
        f"{size / 1e6 / elapsed:.1f} MB/s, {rows / elapsed:,.0f} rows/s; "
        f"gateway RSS {baseline / 2**20:.0f} MiB +{growth / 2**20:.1f} MiB"
    )
    assert growth < 40 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB for {size / 1e6:.0f} MB"


def test_uploads_land_in_s3_when_configured(
    platform: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    s3 = start_s3(tmp_path)
    try:
        storage = s3.storage()
        service, base_url = start_gateway(
            tmp_path,
            OFFLOAD_STORAGE_URL=f"s3://{storage.bucket}/offload",
            OFFLOAD_S3_ENDPOINT_URL=s3.endpoint_url,
            **CREDENTIALS,
        )
        try:
            body = "".join(f'{{"i": {i}, "pad": "{"x" * 200}"}}\n' for i in range(50_000))
            receipt = upload(base_url, body.encode()).json()  # ~11 MB: a multipart upload
            bad = upload(base_url, b"[]\n")
        finally:
            service.stop()
        assert receipt["rows"] == 50_000 and bad.status_code == 422
        under = S3Storage(storage.client, storage.bucket, "offload")
        rows = iter_rows(under, receipt["upload_id"], 29_990, 20)
        assert [r["i"] for r in rows] == list(range(29_990, 30_010))
        listed = storage.client.list_objects_v2(Bucket=storage.bucket)["Contents"]
        assert sorted(o["Key"] for o in listed) == [
            f"offload/uploads/{receipt['upload_id']}/index.json",
            f"offload/uploads/{receipt['upload_id']}/rows.jsonl",
        ]
        with pytest.raises(ObjectNotFound):
            under.size(f"uploads/{receipt['upload_id']}/nothing")
    finally:
        s3.service.stop()


def test_the_column_cap_is_a_setting(narrow_gateway: Gateway) -> None:
    assert upload(narrow_gateway.base_url, b'{"a": 1, "b": 2, "c": 3}\n').status_code == 201
    refused = upload(narrow_gateway.base_url, b'{"a": 1, "b": 2, "c": 3, "d": 4}\n')
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "too_many_columns"
