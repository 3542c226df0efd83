"""A real Prometheus server for tests: started on a free loopback port, stopped by PID."""

from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import yaml

from tests.support.processes import Service, free_port, http_ok, start_process

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
        self._work_dir = work_dir
        self.log_path = work_dir / "prometheus.log"  # start_process logs to <dir>/<name>.log
        self._service: Service | None = None
        self.api = httpx.Client(base_url=self.base_url, timeout=10)

    def start(self) -> Self:
        """Start the server and wait until it reports ready."""
        try:
            self._service = start_process(
                "prometheus",
                [
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self._data_dir}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                None,  # prometheus's own environment
                self._work_dir,
                ready=http_ok(f"{self.base_url}/-/ready"),
                timeout=30,
                what="prometheus to be ready",
                step=0.1,
                executable=PROMETHEUS,
            )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the process by PID (kill it if it lingers) and close the log."""
        service, self._service = self._service, None
        if service is not None:
            service.stop()
        self.api.close()

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
