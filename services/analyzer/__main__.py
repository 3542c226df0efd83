"""`python -m services.analyzer [celery worker options]`: run the analyzer pool."""

import sys

from services.common.launch import run_worker

if __name__ == "__main__":
    run_worker(
        "analyzer", "services.analyzer.worker", ["worker", "--queues", "analyzer", *sys.argv[1:]]
    )
