"""Celery beat for every service: publishes periodic tasks by name to their service's queue.

Beat imports no worker code; it only needs task names and queues, which are contracts.
`python -m services.ops.beat` runs it.
"""

import sys
import tempfile
from pathlib import Path

from services.common.config import ServiceSettings
from services.common.worker.app import create_celery

SCHEDULE: dict[str, dict[str, object]] = {
    "analyzer-sweep-stale-jobs": {
        "task": "analyzer.sweep_stale_jobs",
        "schedule": 60.0,
        "options": {"queue": "analyzer", "priority": 9, "expires": 55},
    },
    # Scheduled campaigns live in Postgres, not as broker ETAs; this starts the due ones.
    "pusher-dispatch-due-campaigns": {
        "task": "pusher.dispatch_due_campaigns",
        "schedule": 1.0,
        "options": {"queue": "pusher.urgent", "priority": 9, "expires": 5},
    },
    # Hourly: reports live a day, a download after expiry is already refused (404), and a pool
    # scaled to zero (deploy/k8s) is woken once an hour for it rather than every few minutes.
    "pdfgen-cleanup-expired-reports": {
        "task": "pdfgen.cleanup_expired_reports",
        "schedule": 3600.0,
        "options": {"queue": "pdfgen", "priority": 9, "expires": 3500},
    },
}

settings = ServiceSettings()
app = create_celery(None, settings)
app.conf.beat_schedule = SCHEDULE
app.conf.beat_schedule_filename = str(Path(tempfile.gettempdir()) / "offload-beat-schedule")

if __name__ == "__main__":
    from services.common.launch import run_worker

    run_worker("beat", "services.ops.beat", ["beat", *sys.argv[1:]])
