"""`python -m services.pusher [celery worker options]`: run a pusher pool.

Pass `--queues pusher.urgent` (or `pusher.bulk`) to give urgent campaigns their own pool;
without --queues the pool consumes both.
"""

import sys

from services.common.contracts.push import BULK_QUEUE, URGENT_QUEUE
from services.common.launch import run_worker

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(arg in ("-Q", "--queues") or arg.startswith("--queues=") for arg in argv):
        argv = ["--queues", f"{URGENT_QUEUE},{BULK_QUEUE}", *argv]
    run_worker("pusher", "services.pusher.worker", ["worker", *argv])
