"""start_process (tests/support/processes.py): started, polled until ready, stopped by PID; a
process that exits or never gets ready fails with the tail of its log."""

from pathlib import Path

import psutil
import pytest

from tests.support.processes import free_port, http_ok, port_open, start_process


def test_a_server_is_returned_once_it_answers_and_stopped_by_pid(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = start_process(
        "http-server",
        ["-m", "http.server", str(port), "--bind", "127.0.0.1"],
        None,
        tmp_path,
        ready=http_ok(url),
        timeout=20,
    )
    with server:
        assert http_ok(url)() and port_open(port)()
    assert server.process.poll() is not None
    assert not port_open(port)()


def test_a_process_that_exits_first_fails_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"early exited \(3\):\nno config found"):
        start_process(
            "early",
            ["-c", "import sys; print('no config found'); sys.exit(3)"],
            None,
            tmp_path,
            ready=lambda: False,
            timeout=20,
        )


def test_a_process_never_ready_is_stopped_and_fails_with_its_log(tmp_path: Path) -> None:
    script = "import time; print('still booting', flush=True); time.sleep(60)"
    started: set[int] = set()

    def never() -> bool:
        started.update(p.pid for p in psutil.Process().children() if script in p.cmdline())
        return False

    with pytest.raises(TimeoutError, match=r"the slow one; slow logged:\nstill booting"):
        start_process(
            "slow",
            ["-c", script],
            None,
            tmp_path,
            ready=never,
            timeout=1,
            what="the slow one",
        )
    assert started
    assert not any(psutil.pid_exists(pid) for pid in started)
