"""A real S3 HTTP API on loopback (moto's server), started and stopped by PID for a test session."""

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.common.storage import LocalStorage, S3Storage, Storage, s3_client
from tests.support.processes import Service, free_port, http_ok, start_process

# Moto accepts any credentials; boto3 only needs some to sign with.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "offload-test",
    "AWS_SECRET_ACCESS_KEY": "offload-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass
class S3Server:
    service: Service
    endpoint_url: str

    def storage(self, prefix: str = "") -> S3Storage:
        """An S3Storage on a fresh bucket of this server."""
        client = s3_client(self.endpoint_url, "us-east-1")
        bucket = f"offload-test-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        return S3Storage(client, bucket, prefix)


def start_s3(log_dir: Path) -> S3Server:
    """A moto S3 server on a free loopback port, once it answers."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    service = start_process(
        "moto-s3",
        ["-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        {k: v for k, v in os.environ.items() if not k.startswith("OFFLOAD_")},
        log_dir,
        ready=http_ok(f"{endpoint}/moto-api/", accept=lambda status: status < 500),
        timeout=30,
        what="the moto S3 server",
        step=0.1,
    )
    return S3Server(service, endpoint)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server for the session; boto3 credentials set for this process."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in CREDENTIALS.items():
            patch.setenv(name, value)
        server = start_s3(tmp_path_factory.mktemp("s3"))
        try:
            yield server
        finally:
            server.service.stop()


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend in turn: a local directory, then a fresh bucket (under a prefix) on moto."""
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    server: S3Server = request.getfixturevalue("s3_server")
    return server.storage(prefix="some/prefix")
