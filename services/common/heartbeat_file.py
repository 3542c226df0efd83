"""Heartbeat files: a live process keeps one fresh, its container health check reads the age.

Imports neither Celery nor the settings, so the health check stays cheap; the Celery side
(the consumer bootstep and beat's scheduler) is in services/common/worker/heartbeat.py.
"""

import tempfile
import time
from pathlib import Path

# A heartbeat this many intervals old means the process stopped beating, not a slow tick.
STALE_AFTER_INTERVALS = 6


def path_for(heartbeat_file: str | None, role: str) -> Path:
    """The configured file, else `offload-<role>.heartbeat` in the temp directory."""
    if heartbeat_file:
        return Path(heartbeat_file)
    return Path(tempfile.gettempdir()) / f"offload-{role}.heartbeat"


def max_age_s(interval_s: float) -> float:
    """How old a heartbeat beating every `interval_s` may get before it counts as stopped."""
    return STALE_AFTER_INTERVALS * interval_s


def touch(path: Path) -> None:
    """Create the file or bump its modification time to now."""
    path.touch()


def remove(path: Path) -> None:
    """Delete the file: the process says it is no longer healthy."""
    path.unlink(missing_ok=True)


def age_s(path: Path) -> float | None:
    """Seconds since the file was last touched; None when there is no file."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return max(0.0, time.time() - modified)
