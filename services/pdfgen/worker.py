"""The pdfgen Celery app: consumes only the `pdfgen` queue.

Children are recycled on memory (and after 100 tasks as a backstop), not after every task:
a render child's peak stays flat across chunks, and forking one per task cost 2.4x in wall
time (measured). Per-task peaks are read from the kernel's high-water mark (see memory.py).
"""

from services.common.worker.app import worker_app
from services.pdfgen import fonts
from services.pdfgen.config import PdfgenSettings

settings = PdfgenSettings()
fonts.register(settings.pdf_font_path, settings.pdf_bold_font_path)  # a missing font stops here
app = worker_app("pdfgen", settings, tasks_module="services.pdfgen.tasks")
app.conf.worker_max_memory_per_child = settings.pdf_max_child_rss_mib * 1024  # KiB
app.conf.worker_max_tasks_per_child = 100
