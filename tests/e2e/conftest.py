"""A running gateway and analyzer pool shared by the end-to-end tests of one module."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import purge_queues
from tests.support.processes import Service, start_gateway, start_worker


@dataclass
class Stack:
    gateway: Service
    base_url: str
    analyzer: Service


@pytest.fixture(scope="module")
def stack(platform: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log_dir: Path = tmp_path_factory.mktemp("logs")
    purge_queues()
    gateway, base_url = start_gateway(log_dir)
    try:
        analyzer = start_worker("analyzer", "analyzer", log_dir, concurrency=2)
    except BaseException:
        gateway.stop()
        raise
    try:
        yield Stack(gateway, base_url, analyzer)
    finally:
        analyzer.stop()
        gateway.stop()
