"""The device registry through a real gateway process and Postgres: register, unregister, import."""

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from services.ops.cli import cli
from tests.conftest import api
from tests.support import environment
from tests.support.processes import Gateway, PeakRss, gateway_for_module

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gateway(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from gateway_for_module(tmp_path_factory)


@pytest.fixture
def base_url(gateway: Gateway) -> str:
    """The gateway's URL, with an empty device registry."""
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        conn.execute("TRUNCATE devices")
    return gateway.base_url


def db_device(token: str) -> dict[str, Any] | None:
    with psycopg.connect(environment.DATABASE_URL) as conn:
        cur = conn.execute(
            "SELECT platform, user_id, topics, active, deactivated_reason FROM devices "
            "WHERE token = %s",
            (token,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    keys = ("platform", "user_id", "topics", "active", "deactivated_reason")
    return dict(zip(keys, row, strict=True))


def device_count() -> int:
    with psycopg.connect(environment.DATABASE_URL) as conn:
        row = conn.execute("SELECT count(*) FROM devices").fetchone()
    assert row is not None
    return int(row[0])


def chunked(data: bytes, size: int = 7_001) -> Iterator[bytes]:
    """An upload in odd-sized chunks, so lines straddle chunk boundaries."""
    for at in range(0, len(data), size):
        yield data[at : at + size]


def import_body(base_url: str, body: bytes | Iterable[bytes], content_type: str) -> httpx.Response:
    with api(base_url) as client:
        return client.post(
            "/v1/devices/import",
            content=chunked(body) if isinstance(body, bytes) else body,
            headers={"Content-Type": content_type},
            timeout=120,
        )


# -- register, read, unregister ----------------------------------------------------------------


def test_a_new_token_is_201_and_a_known_one_200_with_updates(base_url: str) -> None:
    token = "fMEP0vJqS0:APA91bH-xyz_123"
    with api(base_url) as client:
        first = client.post(
            "/v1/devices",
            json={"token": token, "platform": "android", "user_id": "u1", "topics": ["news"]},
        )
        assert first.status_code == 201, first.text
        created = first.json()
        assert created["token"] == token and created["platform"] == "android"
        assert created["user_id"] == "u1" and created["topics"] == ["news"]
        assert created["active"] is True and created["deactivated_at"] is None

        again = client.post(
            "/v1/devices",
            json={"token": token, "platform": "web", "user_id": "u2", "topics": ["a", "b", "a"]},
        )
        assert again.status_code == 200, again.text
        updated = again.json()
        assert (updated["platform"], updated["user_id"], updated["topics"]) == (
            "web",
            "u2",
            ["a", "b"],
        )
        assert updated["created_at"] == created["created_at"]
        assert updated["updated_at"] > created["updated_at"]

        # Topics omitted: kept. user_id omitted: cleared (the app re-registers when logged out).
        kept = client.post("/v1/devices", json={"token": token, "platform": "web"}).json()
        assert kept["topics"] == ["a", "b"] and kept["user_id"] is None
        cleared = client.post("/v1/devices", json={"token": token, "platform": "web", "topics": []})
        assert cleared.json()["topics"] == []
        assert client.get(f"/v1/devices/{token}").json() == cleared.json()
    assert device_count() == 1


def test_registering_again_reactivates_a_deactivated_device(base_url: str) -> None:
    with api(base_url) as client:
        assert (
            client.post("/v1/devices", json={"token": "t-1", "platform": "ios"}).status_code == 201
        )
        # What the pusher does when FCM answers UNREGISTERED.
        with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
            conn.execute(
                "UPDATE devices SET active = false, deactivated_reason = 'UNREGISTERED', "
                "deactivated_at = now() WHERE token = 't-1'"
            )
        inactive = client.get("/v1/devices/t-1").json()
        assert inactive["active"] is False and inactive["deactivated_reason"] == "UNREGISTERED"

        back = client.post("/v1/devices", json={"token": "t-1", "platform": "ios", "user_id": "u"})
    assert back.status_code == 200, back.text
    device = back.json()
    assert device["active"] is True and device["user_id"] == "u"
    assert device["deactivated_reason"] is None and device["deactivated_at"] is None


def test_delete_unregisters_then_404s(base_url: str) -> None:
    token = "abc:def/ghi"  # a slash survives the path when URL-encoded
    path = f"/v1/devices/{quote(token, safe='')}"
    with api(base_url) as client:
        client.post("/v1/devices", json={"token": token, "platform": "web"}).raise_for_status()
        deleted = client.delete(path)
        assert deleted.status_code == 204 and deleted.content == b""
        assert db_device(token) == {
            "platform": "web",
            "user_id": None,
            "topics": [],
            "active": False,
            "deactivated_reason": "unregistered",
        }
        assert client.get(path).json()["active"] is False

        again = client.delete(path)
        assert again.status_code == 404
        assert again.json() == {
            "error": {"code": "device_not_found", "message": "no active device with this token"}
        }
        assert client.delete("/v1/devices/never-registered").status_code == 404
        unknown = client.get("/v1/devices/never-registered")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "device_not_found"
        assert (
            client.post("/v1/devices", json={"token": token, "platform": "web"}).status_code == 200
        )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"token": "", "platform": "android"}, "token"),
        ({"token": "has space", "platform": "android"}, "token"),
        ({"token": "tab\there", "platform": "android"}, "token"),
        ({"token": "ctl\x01", "platform": "android"}, "token"),
        ({"token": "x" * 2049, "platform": "android"}, "token"),
        ({"token": "é" * 1025, "platform": "android"}, "token"),
        ({"platform": "android"}, "token"),
        ({"token": "t", "platform": "windows"}, "platform"),
        ({"token": "t"}, "platform"),
        ({"token": "t", "platform": "ios", "user_id": "u" * 257}, "user_id"),
        ({"token": "t", "platform": "ios", "user_id": ""}, "user_id"),
        ({"token": "t", "platform": "ios", "topics": ["bad topic"]}, "topics"),
        ({"token": "t", "platform": "ios", "topics": ["ok", "a/b"]}, "topics"),
        ({"token": "t", "platform": "ios", "colour": "red"}, "colour"),
    ],
)
def test_invalid_registrations_are_422_naming_the_field(
    base_url: str, body: dict[str, Any], field: str
) -> None:
    with api(base_url) as client:
        response = client.post("/v1/devices", json=body)
    assert response.status_code == 422, response.text
    assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}
    assert device_count() == 0


def test_the_longest_allowed_token_is_stored(base_url: str) -> None:
    token = "x" * 2048
    with api(base_url) as client:
        assert (
            client.post("/v1/devices", json={"token": token, "platform": "ios"}).status_code == 201
        )
        assert client.get(f"/v1/devices/{token}").json()["token"] == token


def test_every_route_needs_the_api_key(base_url: str) -> None:
    with api(base_url, key=None) as client:
        answers = [
            client.post("/v1/devices", json={"token": "t", "platform": "ios"}),
            client.get("/v1/devices/t"),
            client.delete("/v1/devices/t"),
            client.post(
                "/v1/devices/import",
                content=b'{"token": "t", "platform": "ios"}\n',
                headers={"Content-Type": "application/x-ndjson"},
            ),
        ]
    with api(base_url, key="wrong") as client:
        answers.append(client.get("/v1/devices/t"))
    assert [a.status_code for a in answers] == [401] * 5
    assert all(a.json()["error"]["code"] == "unauthorized" for a in answers)
    assert device_count() == 0


# -- bulk import -------------------------------------------------------------------------------

PLATFORMS = ("android", "ios", "web")


def ndjson_fleet(n: int, prefix: str = "tok", user: str = "u") -> list[str]:
    return [
        json.dumps(
            {"token": f"{prefix}-{i}", "platform": PLATFORMS[i % 3], "user_id": f"{user}{i}"}
        )
        for i in range(1, n + 1)
    ]


def test_ndjson_import_lands_good_rows_and_reports_bad_lines(base_url: str) -> None:
    lines = ndjson_fleet(20_000)
    lines[5 - 1] = '{"token": "tok-5", "platform": '  # bad JSON
    lines[100 - 1] = '{"token": "tok-100", "platform": "windows"}'
    lines[1000 - 1] = '{"token": "", "platform": "ios"}'
    # tok-10 again, later in the file: the last line for a token wins.
    lines[15000 - 1] = '{"token": "tok-10", "platform": "web", "user_id": "last"}'
    lines[18000 - 1] = '{"token": "tok-18000", "platform": "ios", "topics": ["news", "sport"]}'
    lines += ["", "[1, 2]", '{"token": "tok-x", "platform": "ios", "extra": 1}']
    body = ("\r\n".join(lines) + "\n").encode()

    response = import_body(base_url, body, "application/x-ndjson")

    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["errors"] == [
        {"line": 5, "error": summary["errors"][0]["error"]},
        {"line": 100, "error": "platform must be one of android, ios, web"},
        {"line": 1000, "error": summary["errors"][2]["error"]},
        {"line": 20002, "error": "expected a JSON object"},
        {"line": 20003, "error": "unknown field(s): extra"},
    ]
    assert summary["errors"][0]["error"].startswith("invalid JSON")
    assert "token must be non-empty" in summary["errors"][2]["error"]
    # 20,002 data lines (the blank one is skipped); tok-10 twice: one insert, one update.
    assert (summary["received"], summary["rejected"]) == (20_002, 5)
    assert (summary["inserted"], summary["updated"]) == (19_996, 1)
    assert device_count() == 19_996
    assert db_device("tok-10") == {
        "platform": "web",
        "user_id": "last",
        "topics": [],
        "active": True,
        "deactivated_reason": None,
    }
    assert db_device("tok-18000") is not None and db_device("tok-18000")["topics"] == [  # type: ignore[index]
        "news",
        "sport",
    ]
    assert db_device("tok-100") is None and db_device("tok-5") is None


def test_csv_import_with_topics_quotes_and_bad_lines(base_url: str) -> None:
    rows = [f"c-{i},{PLATFORMS[i % 3]},u{i},news;sport" for i in range(1, 20_001)]
    rows[7 - 1] = "c-7,android"  # too few fields
    rows[70 - 1] = "c-70,blackberry,u70,"
    rows[700 - 1] = ",ios,u700,"
    rows[7000 - 1] = "c-7000,ios,u7000,bad topic"
    rows[9000 - 1] = '"c-9000",web,"user, with a comma",'
    rows[19_999 - 1] = "c-1,web,u-last,"  # c-1 again: last wins, its topics cleared
    body = ("token,platform,user_id,topics\n" + "\n".join(rows)).encode()  # no final newline

    response = import_body(base_url, body, "text/csv; charset=utf-8")

    assert response.status_code == 200, response.text
    summary = response.json()
    # The header is line 1, so data row k is line k + 1.
    assert [e["line"] for e in summary["errors"]] == [8, 71, 701, 7001]
    assert summary["errors"][0]["error"] == "expected 4 fields, got 2"
    assert "not a valid FCM topic name" in summary["errors"][3]["error"]
    assert (summary["received"], summary["rejected"]) == (20_000, 4)
    assert (summary["inserted"], summary["updated"]) == (19_995, 1)
    assert device_count() == 19_995
    assert db_device("c-2") == {
        "platform": "web",
        "user_id": "u2",
        "topics": ["news", "sport"],
        "active": True,
        "deactivated_reason": None,
    }
    assert db_device("c-9000")["user_id"] == "user, with a comma"  # type: ignore[index]
    assert db_device("c-1")["topics"] == [] and db_device("c-1")["user_id"] == "u-last"  # type: ignore[index]


def test_a_reimport_updates_instead_of_duplicating(base_url: str) -> None:
    body = ("\n".join(ndjson_fleet(5_000)) + "\n").encode()
    first = import_body(base_url, body, "application/x-ndjson").json()
    assert (first["inserted"], first["updated"], first["rejected"]) == (5_000, 0, 0)
    with api(base_url) as client:
        assert client.delete("/v1/devices/tok-3").status_code == 204
        client.post(
            "/v1/devices", json={"token": "tok-4", "platform": "ios", "topics": ["kept"]}
        ).raise_for_status()

    changed = ndjson_fleet(5_000, user="v")  # every user id changes
    second = import_body(base_url, ("\n".join(changed) + "\n").encode(), "application/x-ndjson")

    assert second.json() == {
        "received": 5_000,
        "inserted": 0,
        "updated": 5_000,
        "rejected": 0,
        "errors": [],
    }
    assert device_count() == 5_000
    assert db_device("tok-3") == {  # re-activated by the import
        "platform": "android",
        "user_id": "v3",
        "topics": [],
        "active": True,
        "deactivated_reason": None,
    }
    assert db_device("tok-4")["topics"] == ["kept"]  # type: ignore[index]  # no topics: kept


def test_import_needs_ndjson_or_csv(base_url: str) -> None:
    with api(base_url) as client:
        wrong = client.post(
            "/v1/devices/import",
            content=b'[{"token": "t", "platform": "ios"}]',
            headers={"Content-Type": "application/json"},
        )
        missing = client.post("/v1/devices/import", content=b"token,platform\nt,ios\n")
    for response in (wrong, missing):
        assert response.status_code == 415, response.text
        assert response.json()["error"]["code"] == "unsupported_media_type"
    bad_header = import_body(base_url, b"token,os\nt,ios\n", "text/csv")
    assert bad_header.status_code == 422
    assert bad_header.json()["error"]["code"] == "invalid_csv_header"
    assert device_count() == 0


def test_the_cli_streams_a_file_and_fails_on_rejected_rows(base_url: str, tmp_path: Path) -> None:
    good = tmp_path / "fleet.csv"
    good.write_text("token,platform,user_id\n" + "".join(f"k-{i},ios,u{i}\n" for i in range(3_000)))
    bad = tmp_path / "fleet.jsonl"
    bad.write_text('{"token": "k-1", "platform": "web"}\nnot json\n')
    runner = CliRunner()

    ok = runner.invoke(
        cli,
        ["devices", "import", str(good), "--gateway-url", base_url, "--api-key", "test-key"],
    )
    assert ok.exit_code == 0, ok.output
    assert "received 3,000, inserted 3,000, updated 0, rejected 0" in ok.output

    env = {"OFFLOAD_GATEWAY_URL": base_url, "OFFLOAD_API_KEY": environment.API_KEY}
    failed = runner.invoke(cli, ["devices", "import", str(bad)], env=env)
    assert failed.exit_code == 1, failed.output
    assert "received 2, inserted 0, updated 1, rejected 1" in failed.output
    assert "line 2: invalid JSON" in failed.output
    assert db_device("k-1")["platform"] == "web"  # type: ignore[index]

    denied = runner.invoke(
        cli, ["devices", "import", str(good), "--gateway-url", base_url, "--api-key", "nope"]
    )
    assert denied.exit_code == 2 and "401" in denied.output


def test_import_memory_stays_bounded(gateway: Gateway, base_url: str) -> None:
    line = '{{"token": "fcm-{i:08d}:APA91bGx{pad}", "platform": "android", "user_id": "u{i}"}}\n'
    pad = "Q" * 140

    def body(first: int, rows: int) -> Iterator[bytes]:
        for start in range(first, first + rows, 500):
            yield "".join(line.format(i=i, pad=pad) for i in range(start, start + 500)).encode()

    rows = 200_000
    size = sum(len(chunk) for chunk in body(0, rows))
    # Warm up with a few batches (code paths, pool connections, the batch buffers' high-water
    # mark), so that what the big import adds is what grows with the upload's size.
    import_body(base_url, body(10_000_000, 30_000), "application/x-ndjson").raise_for_status()
    with PeakRss(gateway.service.pid) as rss:  # one uvicorn worker: the process itself
        response = import_body(base_url, body(0, rows), "application/x-ndjson")
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == rows
    growth = rss.growth
    print(f"file {size / 2**20:.1f} MiB, gateway RSS +{growth / 2**20:.1f} MiB")
    # Holding the body would cost at least its size; batches and allocator slack cost ~10 MiB.
    assert growth < size / 3, f"RSS grew {growth / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"


def test_import_round_trips_backslashes_unicode_and_odd_topics(base_url: str) -> None:
    line = {"token": "to\\ken:é", "platform": "ios", "user_id": "dom\\user ü", "topics": ["NULL"]}
    response = import_body(base_url, json.dumps(line).encode(), "application/x-ndjson")
    assert response.json()["inserted"] == 1, response.text
    assert db_device("to\\ken:é") == {
        "platform": "ios",
        "user_id": "dom\\user ü",
        "topics": ["NULL"],
        "active": True,
        "deactivated_reason": None,
    }
