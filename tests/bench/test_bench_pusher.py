"""The push campaign benchmark still runs: 2,000 devices, checked for correctness, not timings."""

from pathlib import Path

import psycopg
import pytest

from bench import pusher, report, servers

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_pusher_benchmark_delivers_every_push_exactly_once(tmp_path: Path) -> None:
    result = pusher.run(pusher.TINY, tmp_path)

    limit = result["sandbox_max"]
    assert limit["accepted_per_s"] > 0
    assert all(r["failed"] == 0 and r["sandbox_rejected"] == 0 for r in limit["runs"])
    n = pusher.TINY.devices
    assert result["import"]["devices"] == n
    (run,) = result["runs"]
    assert run["correct"] and not run["stalled"], run
    assert run["status"] == "completed" and run["job_status"] == "succeeded"
    assert (run["stats"]["total"], run["stats"]["sent"], run["stats"]["succeeded"]) == (n, n, n)
    assert run["sandbox"]["campaign"] == {"accepted": n, "distinct": n, "duplicates": 0}
    assert run["db"]["deliveries"] == run["db"]["deliveries_ok"] == n
    assert run["msg_per_s"] > 0 and run["vs_sandbox_max"] > 0
    groups = run["usage"]["groups"]
    assert {"gateway", "pool", "sandbox"} <= set(groups)
    assert groups["pool"]["processes"] == 1 + pusher.TINY.concurrency[0]
    assert all(groups[g]["peak_mib"] > 0 for g in ("gateway", "pool", "sandbox"))
    assert "pusher bulk pool" in report.console("pusher", result)

    # Nothing is left behind in the bench database.
    with psycopg.connect(servers.DATABASE_URL) as conn:
        for table in ("devices", "campaigns", "deliveries"):
            row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert row is not None and row[0] == 0, table
