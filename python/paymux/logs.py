"""Structured JSON logs: one wide line per request and per attempt, tied by a request id.

Redaction is by construction: a log line is built only from the named fields callers pass, all of
which are ids, codes, amounts and timings; nothing ever logs a request body, a card or a header.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_logger = logging.getLogger("paymux")


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info and record.levelno >= logging.ERROR:
            # The exception's type only: exception text can carry request data.
            line["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return orjson.dumps(line, default=str).decode()


def configure(level: str = "info", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger("paymux")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    if not _logger.isEnabledFor(level):
        return
    rid = request_id_var.get()
    if rid is not None:
        fields["request_id"] = rid
    _logger.log(level, event, extra={"fields": fields})


def now() -> float:
    return time.time()
