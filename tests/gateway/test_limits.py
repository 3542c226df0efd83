"""Request guard through a real gateway process: the key before any body byte, body limits."""

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import api
from tests.support import environment
from tests.support.processes import Gateway, PeakRss, gateway_for_module

pytestmark = pytest.mark.integration

MiB = 2**20
# The gateway below takes device imports of up to this many bytes (other limits: defaults).
IMPORT_LIMIT = 200_000
ANALYSIS = b'{"blog_url": "https://blog.example.com/", "pad": "'


@pytest.fixture(scope="module")
def gateway(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    yield from gateway_for_module(
        tmp_path_factory,
        OFFLOAD_STORAGE_URL=tmp_path_factory.mktemp("storage").as_uri(),
        OFFLOAD_DEVICE_IMPORT_MAX_BYTES=str(IMPORT_LIMIT),
    )


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def head_only(base_url: str, path: str, headers: dict[str, str], wait_s: float = 5) -> Answer:
    """POST only the head of a request (its body never comes) and read the answer."""
    url = httpx.URL(base_url)
    assert url.host and url.port
    head = [f"POST {path} HTTP/1.1", f"Host: {url.host}:{url.port}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((url.host, url.port), timeout=wait_s) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                data += _recv(sock)
            status_line, *lines = data.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
            fields = dict(line.split(": ", 1) for line in lines)
            answer = {name.lower(): value for name, value in fields.items()}
            body = data.split(b"\r\n\r\n", 1)[1]
            while len(body) < int(answer["content-length"]):
                body += _recv(sock)
        except TimeoutError:
            pytest.fail(f"no answer within {wait_s} s while the body was held back")
    return Answer(int(status_line.split()[1]), answer, body)


def _recv(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise AssertionError("the gateway closed the connection without answering")
    return chunk


def bearer(key: str = environment.API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# --- the key, before the body ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/analyses", "application/json"),
        ("/v1/reports", "application/json"),
        ("/v1/devices", "application/json"),
        ("/v1/uploads", "application/x-ndjson"),
        ("/v1/devices/import", "text/csv"),
    ],
)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_anonymous_requests_are_401_before_a_body_byte_is_sent(
    gateway: Gateway, path: str, content_type: str, framing: str
) -> None:
    length = (
        {"Content-Length": str(50 * MiB)}
        if framing == "content-length"
        else {"Transfer-Encoding": "chunked"}
    )
    answer = head_only(gateway.base_url, path, {"Content-Type": content_type, **length})
    assert answer.status == 401, answer.body
    assert answer.json() == {"error": {"code": "unauthorized", "message": "missing bearer token"}}
    assert answer.headers["www-authenticate"] == "Bearer"
    assert answer.headers["x-request-id"]

    wrong = head_only(
        gateway.base_url, path, {"Content-Type": content_type, **length, **bearer("nope")}
    )
    assert wrong.status == 401
    assert wrong.json()["error"]["message"] == "invalid bearer token"


def test_an_anonymous_50_mb_body_does_not_grow_the_gateway(gateway: Gateway) -> None:
    body = ANALYSIS + b"x" * (50 * MiB) + b'"}'
    headers = {"Content-Type": "application/json"}
    httpx.post(f"{gateway.base_url}/v1/analyses", content=body[:1000], headers=headers)  # warm
    with PeakRss(gateway.service.pid) as rss:
        response = httpx.post(
            f"{gateway.base_url}/v1/analyses", content=body, headers=headers, timeout=60
        )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "unauthorized"
    print(f"\nanonymous 50 MiB body: 401, gateway RSS +{rss.growth / MiB:.1f} MiB")
    assert rss.growth < 16 * MiB, f"RSS grew {rss.growth / MiB:.1f} MiB for a 50 MiB body"
    with api(gateway.base_url) as client:  # the connection was kept usable; so is the gateway
        assert client.get("/healthz").status_code == 200


# --- body limits -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content_type", "declared"),
    [
        ("/v1/analyses", "application/json", MiB + 1),  # OFFLOAD_BODY_MAX_BYTES, 1 MiB
        ("/v1/devices", "application/json", 2 * MiB),
        ("/v1/reports", "application/json", 8 * MiB + 1),  # OFFLOAD_REPORT_BODY_MAX_BYTES
        ("/v1/devices/import", "application/x-ndjson", IMPORT_LIMIT + 1),
    ],
)
def test_a_declared_oversized_body_is_413_before_it_is_sent(
    gateway: Gateway, path: str, content_type: str, declared: int
) -> None:
    headers = {"Content-Type": content_type, "Content-Length": str(declared), **bearer()}
    answer = head_only(gateway.base_url, path, headers)
    assert answer.status == 413, answer.body
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == "payload_too_large"
    assert "limited to" in answer.json()["error"]["message"]


def test_a_declared_oversized_upload_keeps_its_own_error_code(gateway: Gateway) -> None:
    headers = {
        "Content-Type": "application/x-ndjson",
        "Content-Length": str(2 * 1024**3 + 1),
        **bearer(),
    }
    answer = head_only(gateway.base_url, "/v1/uploads", headers)
    assert answer.status == 413
    assert answer.json()["error"]["code"] == "upload_too_large"


def test_an_oversized_json_body_sent_whole_is_413(gateway: Gateway) -> None:
    body = ANALYSIS + b"x" * (2 * MiB) + b'"}'
    with api(gateway.base_url) as client:
        response = client.post(
            "/v1/analyses", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def chunks(first: bytes, size: int, last: bytes = b"") -> Iterator[bytes]:
    """A body without Content-Length (chunked), `size` bytes in all."""
    yield first
    left = size - len(first) - len(last)
    while left > 0:
        yield b"x" * min(left, 64 * 1024)
        left -= 64 * 1024
    yield last


def test_a_chunked_oversized_json_body_is_413(gateway: Gateway) -> None:
    with api(gateway.base_url) as client:
        response = client.post(
            "/v1/analyses",
            content=chunks(ANALYSIS, 3 * MiB, b'"}'),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413, response.text
        assert response.json() == {
            "error": {
                "code": "payload_too_large",
                "message": f"request bodies here are limited to {MiB} bytes",
            }
        }
        assert response.headers["x-request-id"]
        assert client.get("/healthz").status_code == 200  # the gateway goes on as before


def test_a_chunked_oversized_device_import_is_413(gateway: Gateway) -> None:
    line = b'{"token": "limits-import-%06d", "platform": "ios"}\n'

    def body() -> Iterator[bytes]:
        for start in range(0, 20_000, 1000):
            yield b"".join(line % i for i in range(start, start + 1000))

    with api(gateway.base_url) as client:
        response = client.post(
            "/v1/devices/import", content=body(), headers={"Content-Type": "application/x-ndjson"}
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        conn.execute("DELETE FROM devices WHERE token LIKE 'limits-import-%'")


def test_a_report_may_be_larger_than_other_json_bodies(gateway: Gateway) -> None:
    columns = [{"key": "id", "label": "ID"}, {"key": "customer", "label": "Customer"}]
    rows = [{"id": i, "customer": f"customer {i:06d} " + "n" * 120} for i in range(10_000)]
    spec = {"title": "big", "columns": columns, "rows": rows, "group_by": "nope"}
    body = json.dumps(spec).encode()
    assert MiB < len(body) < 8 * MiB
    with api(gateway.base_url) as client:
        response = client.post(
            "/v1/reports", content=body, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text  # read and validated, not refused
    assert "unknown column key" in response.text


# --- what stays as it was --------------------------------------------------------------------


def test_normal_requests_still_work(gateway: Gateway) -> None:
    with psycopg.connect(environment.DATABASE_URL, autocommit=True) as conn:
        conn.execute("DELETE FROM devices WHERE token = 'limits-t1'")
    with api(gateway.base_url) as client:
        registered = client.post("/v1/devices", json={"token": "limits-t1", "platform": "ios"})
        assert registered.status_code == 201, registered.text
        assert client.get("/v1/devices/limits-t1").json()["token"] == "limits-t1"
        lower = client.get("/v1/devices/limits-t1", headers={"Authorization": "bearer test-key"})
        assert lower.status_code == 200
        imported = client.post(
            "/v1/devices/import",
            content=b"token,platform\nlimits-t1,web\n",
            headers={"Content-Type": "text/csv"},
        )
        assert imported.status_code == 200 and imported.json()["updated"] == 1
    with api(gateway.base_url, key=None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200
        assert anonymous.get("/metrics").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
        assert anonymous.get("/no/such/route").status_code == 404
        job = anonymous.get("/v1/jobs/00000000-0000-0000-0000-000000000000")
        assert job.status_code == 401
        assert job.json()["error"]["code"] == "unauthorized"
