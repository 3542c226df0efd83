"""A real Prometheus server for tests: started on a free loopback port, stopped by PID."""

import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

from tests.support.processes import free_port, wait_until

PROMETHEUS = "/usr/bin/prometheus"


class QueryError(RuntimeError):
    """Prometheus refused or failed to evaluate a query."""


class PrometheusServer:
    """`prometheus` with the given configuration, its data in a temporary directory."""

    def __init__(self, config: dict[str, Any], work_dir: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config_path = work_dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self._data_dir = work_dir / "tsdb"
        self.log_path = work_dir / "prometheus.log"
        self._log = self.log_path.open("ab")
        self._process: subprocess.Popen[bytes] | None = None
        self.api = httpx.Client(base_url=self.base_url, timeout=10)

    def start(self) -> Self:
        """Start the server and wait until it reports ready."""
        self._process = process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self._data_dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()[-3000:]}")
            try:
                return self.api.get("/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_until(ready, 30, "prometheus to be ready", step=0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the process (kill it if it lingers) and close the log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.api.close()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query at the current time: its result list (QueryError if it fails)."""
        response = self.api.get("/api/v1/query", params={"query": expr})
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise QueryError(f"{body.get('errorType')}: {body.get('error')}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets with their health and last error."""
        body = self.api.get("/api/v1/targets", params={"state": "active"}).json()
        targets: list[dict[str, Any]] = body["data"]["activeTargets"]
        return targets

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts pending or firing right now."""
        alerts: list[dict[str, Any]] = self.api.get("/api/v1/alerts").json()["data"]["alerts"]
        return alerts

    def rule_groups(self) -> list[dict[str, Any]]:
        """Loaded rule groups with each rule's health and last evaluation error."""
        groups: list[dict[str, Any]] = self.api.get("/api/v1/rules").json()["data"]["groups"]
        return groups

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
