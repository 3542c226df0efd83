"""Structured JSON logs that carry the request id, job id and task id of the work in hand."""

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pythonjsonlogger.json import JsonFormatter

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
job_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
task_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("task_id", default=None)

FIELDS = ("asctime", "levelname", "name", "message", "request_id", "job_id", "task_id")
_CONTEXT = {"request_id": request_id_var, "job_id": job_id_var, "task_id": task_id_var}


class ContextFilter(logging.Filter):
    """Copy the current ids onto every record so the formatter can print them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT.items():
            if not hasattr(record, name):
                setattr(record, name, var.get())
        return True


def configure(service: str, level: str = "INFO", json_logs: bool = True) -> None:
    """Route all logging to stderr, as JSON lines unless told otherwise."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ContextFilter())
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                " ".join(f"%({field})s" for field in FIELDS),
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(job_id)s] %(message)s"
            )
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@contextmanager
def bound(**ids: str | None) -> Iterator[None]:
    """Set request_id / job_id / task_id for the duration of a block."""
    tokens = [(_CONTEXT[name], _CONTEXT[name].set(value)) for name, value in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)
