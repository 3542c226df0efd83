"""Task names and payload schemas shared by the gateway (which publishes) and workers (which run).

The gateway validates a payload against these models before publishing; the worker validates
again on receipt. Payloads carry ids and small values only; state is re-read inside the task.
"""

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

Priority = Literal["high", "normal", "low"]

# AMQP message priority per API priority; queues are declared with x-max-priority 10.
MESSAGE_PRIORITY: dict[str, int] = {"high": 9, "normal": 5, "low": 1}


class TaskPayload(BaseModel):
    """Base of every task payload: strict, immutable, JSON-only."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class TaskContract:
    """One task: its registered name, the queue it is routed to, and its payload model."""

    name: str
    queue: str
    payload: type[TaskPayload]
