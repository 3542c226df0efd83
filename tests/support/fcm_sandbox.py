"""The FCM sandbox as a real process on a free port, and a thin client for its admin API."""

import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from services.pusher.config import PusherSettings
from tests.support import environment
from tests.support.processes import Service, free_port, http_ok, start_process


class FcmSandbox:
    """`python -m services.fcm_sandbox` on 127.0.0.1:<free port>, stopped by PID."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._log_dir = log_dir or Path(tempfile.mkdtemp(prefix="fcm-sandbox-"))
        self._service: Service | None = None
        self.admin = httpx.Client(base_url=self.base_url, timeout=10)

    def start(self) -> Self:
        """Start the process and wait until it answers (once: `with FcmSandbox().start()` works)."""
        if self._service is not None:
            return self
        try:
            self._service = start_process(
                f"fcm-sandbox-{self.port}",
                ["-m", "services.fcm_sandbox"],
                environment.service_env(
                    OFFLOAD_SANDBOX_HOST="127.0.0.1",
                    OFFLOAD_SANDBOX_PORT=str(self.port),
                    OFFLOAD_LOG_JSON="false",
                ),
                self._log_dir,
                ready=http_ok(f"{self.base_url}/sandbox/stats"),
                timeout=20,
                what="the FCM sandbox to answer",
            )
        except BaseException:
            self.stop()  # closes the admin client
            raise
        return self

    def stop(self) -> None:
        """SIGTERM the sandbox's process group (SIGKILL if it lingers)."""
        if self._service is not None:
            self._service.stop(timeout=5)
            self._service = None
        self.admin.close()

    @property
    def pid(self) -> int | None:
        return self._service.pid if self._service is not None else None

    def settings(self, **overrides: Any) -> PusherSettings:
        """Pusher settings whose FCM is this sandbox."""
        values: dict[str, Any] = {"sandbox_host": "127.0.0.1", "sandbox_port": self.port}
        values.update(overrides)
        return PusherSettings(**values)

    def stats(self) -> dict[str, Any]:
        return self._json(self.admin.get("/sandbox/stats"))

    def received(self, token: str) -> dict[str, Any]:
        return self._json(self.admin.get("/sandbox/received", params={"token": token}))

    def reset(self) -> None:
        """Forget everything received and every rule."""
        self._json(self.admin.post("/sandbox/reset"))

    def add_rule(self, **rule: Any) -> dict[str, Any]:
        """POST /sandbox/rules: tokens or prefix, error, times, retry_after_s, latency_s."""
        return self._json(self.admin.post("/sandbox/rules", json=rule))

    def clear_rules(self) -> None:
        self._json(self.admin.delete("/sandbox/rules"))

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
