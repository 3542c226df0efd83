"""An FCM access token that cannot be had yet is a transient error: the batch is retried with
backoff (the error class's policy), not dead-lettered, and the campaign completes once the
token endpoint answers again."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from services.common import topology
from services.ops import deadletters
from tests.conftest import api, purge_queues
from tests.e2e.test_campaign_delivery import import_devices, send_campaign, wait_completed
from tests.support import environment
from tests.support.fcm_sandbox import FcmSandbox
from tests.support.processes import start_gateway, start_worker
from tests.support.service_account import service_account_file

pytestmark = pytest.mark.integration

FAILURES = 2  # token requests refused before the endpoint recovers


class TokenEndpoint:
    """Google's OAuth2 token endpoint on loopback: refuses the first `failures` grants."""

    def __init__(self, failures: int) -> None:
        self.requests = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.requests += 1
                if endpoint.requests <= failures:
                    status, body = 400, {"error": "invalid_grant", "error_description": "skew"}
                else:
                    status, body = 200, {"access_token": "ya29.t", "expires_in": 3600}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/token"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "TokenEndpoint":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[FcmSandbox]:
    with FcmSandbox(tmp_path).start() as running:
        yield running


def test_a_refused_access_token_retries_the_batch_until_it_is_granted(
    platform: None, clean: None, sandbox: FcmSandbox, tmp_path: Path
) -> None:
    purge_queues()
    tokens = [f"token-{i:03d}" for i in range(300)]
    with TokenEndpoint(FAILURES) as endpoint:
        key_file = service_account_file(tmp_path / "sa.json", token_uri=endpoint.url)
        gateway, base_url = start_gateway(tmp_path)
        worker = start_worker(
            "pusher",
            "pusher.bulk",
            tmp_path,
            concurrency=1,
            name="pusher-token",
            GOOGLE_APPLICATION_CREDENTIALS=str(key_file),
            OFFLOAD_FCM_URL=f"http://127.0.0.1:{sandbox.port}",
            OFFLOAD_PUSH_RETRY_BACKOFF_S="0.2",
        )
        try:
            with api(base_url) as client:
                import_devices(client, tokens)
                campaign_id, job_id = send_campaign(client)
                stats = wait_completed(client, campaign_id, timeout=60)
                job = client.get(f"/v1/jobs/{job_id}").json()
            log = worker.log()
        finally:
            worker.stop()
            gateway.stop()
    assert job["status"] == "succeeded", job
    assert (stats["status"], stats["sent"], stats["succeeded"]) == ("completed", 300, 300)
    assert endpoint.requests == FAILURES + 1  # then cached for the token's lifetime
    assert log.count("transient failure, retry") == FAILURES, log[-3000:]
    bulk = next(spec for spec in topology.QUEUES if spec.name == "pusher.bulk")
    assert deadletters.peek(environment.AMQP_URL, bulk, 10) == []
    assert sandbox.stats()["campaigns"][campaign_id]["distinct"] == 300
