"""A running gateway and analyzer pool shared by the end-to-end tests of one module."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import purge_queues
from tests.support.processes import Service, free_port, start_gateway, start_worker


@dataclass
class Stack:
    gateway: Service
    base_url: str
    analyzer: Service
    analyzer_metrics: str


@pytest.fixture(scope="module")
def stack(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir: Path = tmp_path_factory.mktemp("logs")
    purge_queues()
    gateway, base_url = start_gateway(log_dir)
    try:
        metrics_port = free_port()
        analyzer = start_worker(
            "analyzer", "analyzer", log_dir, concurrency=2, OFFLOAD_METRICS_PORT=str(metrics_port)
        )
    except BaseException:
        gateway.stop()
        raise
    try:
        yield Stack(gateway, base_url, analyzer, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        analyzer.stop()
        gateway.stop()
