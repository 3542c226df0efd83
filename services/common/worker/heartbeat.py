"""Heartbeats for the container health checks: a consumer bootstep for pools, a scheduler for beat.

A pool's heartbeat is fresh only while its consumer is connected to the broker: Celery stops
consumer steps when the connection drops (and at shutdown), which removes the file, and starts
them again once it reconnects. The timer runs on the consumer's event loop, so a loop that
hangs stops the heartbeat too.

Beat's heartbeat is fresh only while its loop ticks and its last publish reached the broker:
a publish that fails removes it, and with the broker gone for good beat blocks reconnecting,
so the file goes stale.
"""

from pathlib import Path
from typing import Any

from celery import Celery, bootsteps
from celery.beat import PersistentScheduler

from services.common import heartbeat_file
from services.common.config import ServiceSettings

HEARTBEAT_FILE = "offload_heartbeat_file"
HEARTBEAT_INTERVAL_S = "offload_heartbeat_interval_s"


def configure(app: Celery, settings: ServiceSettings, *, beat: bool) -> None:
    """Give beat's app the heartbeat scheduler, a worker pool's app the consumer bootstep."""
    role = "beat" if beat else "worker"
    app.conf[HEARTBEAT_FILE] = str(heartbeat_file.path_for(settings.heartbeat_file, role))
    app.conf[HEARTBEAT_INTERVAL_S] = settings.heartbeat_interval_s
    if beat:
        app.conf.beat_scheduler = f"{__name__}:HeartbeatScheduler"
    else:
        app.steps["consumer"].add(ConsumerHeartbeat)


class ConsumerHeartbeat(bootsteps.StartStopStep):  # type: ignore[misc]
    """Touches the heartbeat file every few seconds while the consumer is connected."""

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c: Any, **kwargs: Any) -> None:
        super().__init__(c, **kwargs)
        self.path = Path(c.app.conf[HEARTBEAT_FILE])
        self.interval_s = float(c.app.conf[HEARTBEAT_INTERVAL_S])
        self._tref: Any = None

    def start(self, c: Any) -> None:
        heartbeat_file.touch(self.path)
        self._tref = c.timer.call_repeatedly(self.interval_s, self._beat, (c,))

    def _beat(self, c: Any) -> None:
        if c.connection is not None and c.connection.connected:
            heartbeat_file.touch(self.path)

    def stop(self, c: Any) -> None:
        if self._tref is not None:
            c.timer.cancel(self._tref)
            self._tref = None
        heartbeat_file.remove(self.path)

    shutdown = stop


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    """Beat's persistent scheduler, touching the heartbeat file on every tick that follows a
    successful publish (or none yet)."""

    def __init__(self, app: Celery, *args: Any, max_interval: float | None = None, **kwargs: Any):
        # Wake at least once an interval, whatever the schedule, so the file stays fresh.
        interval_s = float(app.conf[HEARTBEAT_INTERVAL_S])
        max_interval = min(max_interval or interval_s, interval_s)
        super().__init__(app, *args, max_interval=max_interval, **kwargs)
        self.heartbeat_path = Path(app.conf[HEARTBEAT_FILE])
        self._published = True

    def apply_async(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = super().apply_async(*args, **kwargs)
        except Exception:
            self._published = False
            raise
        self._published = True
        return result

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = float(super().tick(*args, **kwargs))
        if self._published:
            heartbeat_file.touch(self.heartbeat_path)
        else:
            heartbeat_file.remove(self.heartbeat_path)
        return interval

    def close(self) -> None:
        super().close()
        heartbeat_file.remove(self.heartbeat_path)
