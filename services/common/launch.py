"""Process entry points: prepare metrics, logging and Sentry, then start the real program.

prometheus_client decides at import time whether it runs in multiprocess mode, so this module
must not import it (nor anything that does) before `prepare_metrics_dir` has run.
"""

import importlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from services.common import logs
from services.common.config import ServiceSettings


def prepare_metrics_dir(settings: ServiceSettings, service: str) -> str:
    """Empty (or create) the directory prefork children write their metric files to."""
    directory = Path(
        settings.prometheus_multiproc_dir
        or Path(tempfile.gettempdir()) / f"offload-metrics-{service}-{os.getpid()}"
    )
    # Emptied rather than recreated: in a container it is often a mount point (an emptyDir with
    # a read-only root filesystem), which cannot be removed.
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return str(directory)


def init_sentry(settings: ServiceSettings, service: str) -> None:
    """Report errors to Sentry when OFFLOAD_SENTRY_DSN is set; a no-op otherwise."""
    if settings.sentry_dsn is None:
        return
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.environment,
        server_name=service,
        traces_sample_rate=0.0,
    )


def run_worker(service: str, app_module: str, argv: list[str]) -> None:
    """Start a Celery worker pool (or beat) for `service` with Celery's own CLI arguments."""
    settings = ServiceSettings()
    prepare_metrics_dir(settings, service)
    logs.configure(service, settings.log_level, settings.log_json)
    init_sentry(settings, service)
    from celery import signals

    @signals.setup_logging.connect(weak=False)
    def _keep_our_logging(**_: Any) -> None:
        """Stop Celery from replacing the JSON log configuration."""

    app = importlib.import_module(app_module).app
    app.start(argv)
