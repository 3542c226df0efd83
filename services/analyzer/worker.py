"""The analyzer's Celery app: consumes only the `analyzer` queue."""

from services.analyzer.config import AnalyzerSettings
from services.common.worker import signals
from services.common.worker.app import create_celery

settings = AnalyzerSettings()
app = create_celery(
    "analyzer",
    settings,
    include=("services.analyzer.tasks",),
    soft_time_limit_s=settings.task_soft_time_limit_s,
    time_limit_s=settings.task_time_limit_s,
)
app.conf["offload_settings"] = settings
signals.serve_metrics(app, settings.metrics_port, settings.metrics_bind)
