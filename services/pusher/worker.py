"""The pusher's Celery app: consumes pusher.bulk and/or pusher.urgent (one pool for each)."""

from services.common.worker import signals
from services.common.worker.app import create_celery
from services.pusher.config import PusherSettings

settings = PusherSettings()
app = create_celery(
    "pusher",
    settings,
    include=("services.pusher.tasks",),
    soft_time_limit_s=settings.task_soft_time_limit_s,
    time_limit_s=settings.task_time_limit_s,
)
app.conf["offload_settings"] = settings
signals.serve_metrics(app, settings.metrics_port, settings.metrics_bind)
