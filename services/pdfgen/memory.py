"""Per-task peak memory in a process that runs many tasks (Linux).

`getrusage` reports a process's lifetime peak; the kernel's high-water mark (VmHWM) can be
reset to the current RSS by writing 5 to /proc/self/clear_refs, so each task reads its own.
"""

import contextlib
import resource
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak() -> None:
    """Start measuring a new peak from the current resident size (no-op where unsupported)."""
    # Not Linux, or not permitted: peak_bytes() then reports the lifetime peak.
    with contextlib.suppress(OSError):
        _CLEAR_REFS.write_text("5")


def peak_bytes() -> int:
    """Peak resident bytes since the last reset_peak()."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
