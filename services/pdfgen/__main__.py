"""`python -m services.pdfgen [celery worker options]`: run the pdfgen pool."""

import sys

from services.common.launch import run_worker

if __name__ == "__main__":
    run_worker("pdfgen", "services.pdfgen.worker", ["worker", "--queues", "pdfgen", *sys.argv[1:]])
