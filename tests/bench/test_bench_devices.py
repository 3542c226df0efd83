"""The device import benchmark still runs: a tiny import, checked for sane results."""

from pathlib import Path

import pytest

from bench import devices, report

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def test_devices_benchmark_imports_every_row(tmp_path: Path) -> None:
    result = devices.run(devices.TINY, tmp_path)

    (run,) = result["runs"]
    assert run["correct"], run
    assert run["summary"] == {
        "received": devices.TINY.devices,
        "inserted": devices.TINY.devices,
        "updated": 0,
        "rejected": 0,
    }
    assert run["rows_per_s"] > 0 and run["gateway_rss_peak_mib"] >= run["gateway_rss_start_mib"]
    assert "every row inserted" in report.console("devices", result)
