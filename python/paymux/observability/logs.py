"""Structured JSON logs: one wide line per request and per attempt, tied by a request id.

Redaction is by construction: a log line is built only from the named fields callers pass, all of
which are ids, codes, amounts and timings; nothing ever logs a request body, a card or a header.

Libraries log too: aiohttp's server, access and web loggers and asyncio's (an "Error handling
request" traceback carries the raw request: the Authorization header, the body). `configure()`
routes them through `LibraryLogHandler`, which keeps only the logger's name, the first line of the
message *template* (never its arguments), scrubbed by shape, and the exception's type: never its
text, never a traceback.
"""

from __future__ import annotations

import asyncio
import atexit
import contextvars
import logging
import re
import sys
import time
from typing import Any

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

_logger = logging.getLogger("paymux")


_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warning",
    logging.ERROR: "error",
    logging.CRITICAL: "critical",
}


def json_line(ts: float, level: str, event: str, fields: dict[str, Any] | None) -> str:
    line: dict[str, Any] = {"ts": round(ts, 6), "level": level, "event": event}
    if fields:
        line.update(fields)
    return orjson.dumps(line, default=str).decode()


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info and record.levelno >= logging.ERROR:
            # The exception's type only: exception text can carry request data.
            fields["exception"] = record.exc_info[0].__name__ if record.exc_info[0] else None
        return json_line(record.created, record.levelname.lower(), record.getMessage(), fields)


class BatchedLineHandler(logging.Handler):
    """Writes each record as one line, batched per event-loop iteration.

    A payment logs a request line and an attempt line; written one by one, each was a write()
    syscall on the event loop (8.5% of its samples under load). Inside a running loop, lines are
    joined and written once by a callback on the loop's next turn; outside a loop (the CLI,
    start-up, other threads) a line is written at once.
    """

    def __init__(self, stream: Any, max_pending: int = 512) -> None:
        super().__init__()
        self.stream = stream
        self.max_pending = max_pending
        self._pending: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging must never take a request down
            self.handleError(record)
            return
        self.add_line(line)

    def add_line(self, line: str) -> None:
        """Queue one formatted line (the caller holds the handler's lock)."""
        self._pending.append(line)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or len(self._pending) >= self.max_pending:
            self.flush()
        elif self._flush_on is not loop:
            # Scheduled on this loop; a callback left on a loop that has since closed never runs,
            # so a different loop schedules its own.
            self._flush_on = loop
            loop.call_soon(self.flush)

    def flush(self) -> None:
        self.acquire()
        try:
            self._flush_on = None
            if not self._pending:
                return
            text = "\n".join(self._pending) + "\n"
            self._pending.clear()
            try:
                self.stream.write(text)
                self.stream.flush()
            except (OSError, ValueError):  # a closed stream: nothing sensible left to do
                pass
        finally:
            self.release()


def _flush_all() -> None:
    for handler in logging.getLogger("paymux").handlers:
        handler.flush()


atexit.register(_flush_all)


# The handler configure() installed: while it is the paymux logger's only one, log() formats
# its line and hands it over directly. A stdlib LogRecord (the caller lookup, the thread and
# process names) cost more than the JSON line itself, twice per payment.
_direct: BatchedLineHandler | None = None


# Secrets by shape, for text paymux did not build (library log templates): card-number-like digit
# runs, bearer credentials, API and admin key shapes, and any long unbroken token.
_SECRET_SHAPES = re.compile(
    r"(?<![0-9])(?:[0-9][ \-]?){11,18}[0-9](?![0-9])"
    r"|(?i:bearer|basic)\s+\S+"
    r"|\b(?:sk|rk|pk|whsec|adm)_[A-Za-z0-9_\-]+"
    r"|[A-Za-z0-9+/=_\-]{24,}"
)


def scrub_text(text: str, limit: int = 160) -> str:
    """One line of untrusted text made safe for a log: first line only, secrets by shape removed,
    non-printable characters dropped, truncated."""
    first = text.split("\n", 1)[0][: limit * 2]
    first = _SECRET_SHAPES.sub("[FILTERED]", first)
    first = "".join(c if c.isprintable() else "?" for c in first)
    return first[:limit]


#: Loggers of libraries whose messages can carry request data.
LIBRARY_LOGGERS = ("aiohttp", "asyncio")


class LibraryLogHandler(logging.Handler):
    """Re-emits a library's log record as a paymux line without its arguments or traceback."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
            fields: dict[str, Any] = {"logger": record.name, "template": scrub_text(template)}
            if record.exc_info and record.exc_info[0] is not None:
                fields["exception"] = record.exc_info[0].__name__
            log("library_log", record.levelno, **fields)
        except Exception:  # noqa: BLE001, S110 - logging must never take a request down
            pass


def route_library_logs(level: int = logging.WARNING) -> None:
    """Send aiohttp's and asyncio's loggers through `LibraryLogHandler` (and nowhere else)."""
    handler = LibraryLogHandler()
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        lib.handlers[:] = [handler]
        lib.propagate = False
        lib.setLevel(level)


def configure(level: str = "info", stream: Any = None) -> None:
    global _direct
    handler = BatchedLineHandler(stream or sys.stderr)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger("paymux")
    for old in root.handlers:
        old.flush()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    _direct = handler
    route_library_logs(logging.DEBUG if level.lower() == "debug" else logging.WARNING)


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    if not _logger.isEnabledFor(level):
        return
    rid = request_id_var.get()
    if rid is not None:
        fields["request_id"] = rid
    handler = _direct
    handlers = _logger.handlers
    if handler is not None and len(handlers) == 1 and handlers[0] is handler:
        line = json_line(time.time(), _LEVEL_NAMES.get(level, "info"), event, fields)
        handler.acquire()
        try:
            handler.add_line(line)
        finally:
            handler.release()
        return
    _logger.log(level, event, extra={"fields": fields})


def now() -> float:
    return time.time()
