"""A pool whose metrics port is taken refuses to start instead of running unobserved."""

import socket
from pathlib import Path

import pytest

from tests.support.processes import free_port, start_worker

pytestmark = pytest.mark.integration


def test_a_pool_whose_metrics_port_is_taken_exits(platform: None, tmp_path: Path) -> None:
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(RuntimeError) as exited:
            start_worker("analyzer", "analyzer", tmp_path, OFFLOAD_METRICS_PORT=str(port))
    assert f"cannot serve metrics on 127.0.0.1:{port}" in str(exited.value)
