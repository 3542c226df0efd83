"""`make run` brings up the gateway, the worker pools, beat and the exporter; Ctrl-C stops them
all in 10 s."""

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support import environment
from tests.support.processes import ROOT, free_port, wait_until
from tests.support.prometheus import metric

pytestmark = pytest.mark.e2e


def session_processes(session_id: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == session_id:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def test_make_run_starts_everything_and_stops_on_ctrl_c(platform: None, tmp_path: Path) -> None:
    gateway_port, sandbox_port = free_port(), free_port()
    metrics = {
        name: free_port()
        for name in ("ANALYZER", "PUSHER_BULK", "PUSHER_URGENT", "PDFGEN", "EXPORTER")
    }
    env = environment.service_env(
        OFFLOAD_GATEWAY_PORT=str(gateway_port),
        OFFLOAD_SANDBOX_PORT=str(sandbox_port),
        **{f"OFFLOAD_{name}_METRICS_PORT": str(port) for name, port in metrics.items()},
    )
    log = (tmp_path / "make-run.log").open("wb")
    make = subprocess.Popen(
        ["make", "run"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            assert make.poll() is None, (tmp_path / "make-run.log").read_text()[-3000:]
            urls = [
                f"http://127.0.0.1:{gateway_port}/readyz",
                f"http://127.0.0.1:{sandbox_port}/sandbox/stats",
                *(f"http://127.0.0.1:{port}/metrics" for port in metrics.values()),
            ]
            try:
                return all(httpx.get(url, timeout=1).status_code == 200 for url in urls)
            except httpx.HTTPError:
                return False

        wait_until(up, 90, "make run to bring every process up", step=0.5)
        output = (tmp_path / "make-run.log").read_text()
        assert "Development API key: test-key" in output
        wait_until(lambda: "beat" in (tmp_path / "make-run.log").read_text(), 20, "beat")
        exported = httpx.get(f"http://127.0.0.1:{metrics['EXPORTER']}/metrics", timeout=5).text
        assert metric(exported, "offload_exporter_last_success_timestamp_seconds") > 0
        # make, honcho, gateway, sandbox, beat, exporter and three pools with their children
        assert len(session_processes(make.pid)) >= 9

        started = time.monotonic()
        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        make.wait(timeout=15)
        wait_until(lambda: not session_processes(make.pid), 12, "every process to exit")
        assert time.monotonic() - started <= 10.5
    finally:
        for proc in session_processes(make.pid):
            proc.kill()
        log.close()
