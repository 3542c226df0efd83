"""The pdfgen Celery app: consumes only the `pdfgen` queue, one task per child process
(so every chunk renders in a fresh, small process and its peak memory is measurable)."""

from services.common.worker import signals
from services.common.worker.app import create_celery
from services.pdfgen.config import PdfgenSettings

settings = PdfgenSettings()
app = create_celery(
    "pdfgen",
    settings,
    include=("services.pdfgen.tasks",),
    soft_time_limit_s=settings.task_soft_time_limit_s,
    time_limit_s=settings.task_time_limit_s,
)
app.conf["offload_settings"] = settings
app.conf.worker_max_tasks_per_child = 1
signals.serve_metrics(app, settings.metrics_port, settings.metrics_bind)
