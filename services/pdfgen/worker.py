"""The pdfgen Celery app: consumes only the `pdfgen` queue, one task per child process
(so every chunk renders in a fresh, small process and its peak memory is measurable)."""

from services.common.worker.app import worker_app
from services.pdfgen.config import PdfgenSettings

settings = PdfgenSettings()
app = worker_app("pdfgen", settings, tasks_module="services.pdfgen.tasks")
app.conf.worker_max_tasks_per_child = 1
