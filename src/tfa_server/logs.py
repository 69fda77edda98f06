"""The server's log output: one line per record, written a loop iteration at a time.

Every request writes an access line. Written and flushed one by one they cost a system call
each, and B3 (bench/) measured logging at a tenth of a request's time. Here the lines a loop
iteration logs go out together as the next iteration begins, so they are just as prompt;
warnings and errors, and anything logged away from the event loop, are written at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Literal, TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LogFormat = Literal["text", "json"]
# What an access line carries besides its text: the fields of the exchange the HTTP server
# passes as `extra={"request": ...}` (one attribute, so the text format pays next to nothing).
REQUEST_FIELDS = ("request_id", "method", "path", "route", "status", "duration_ms", "peer")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for a log collector: time (UTC, RFC 3339), level, logger,
    event, and for an access line the request's fields. Only what the server chose to log:
    messages never hold secrets, and the request fields are the same as the text line's."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        millis = int((record.created - seconds) * 1000)
        entry: dict[str, object] = {
            "time": f"{stamp}.{millis:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        request = getattr(record, "request", None)
        if request is not None:
            entry["event"] = "request"
            for name in REQUEST_FIELDS:
                value = getattr(request, name, None)
                if value is not None:
                    entry[name] = value
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=True, separators=(",", ":"))


class LoopBatchedHandler(logging.StreamHandler[TextIO]):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._flush_pending = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)  # under the handler's lock, as every emit is
        if record.levelno < logging.WARNING and self._flush_soon():
            return
        self.flush()

    def _flush_soon(self) -> bool:
        """Flush at the loop's next iteration; False when not on an event loop's thread."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if not self._flush_pending:
            self._flush_pending = True
            loop.call_soon(self._flush_now)
        return True

    def _flush_now(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created in Handler.__init__
            self._flush_pending = False
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self._lines:
                lines, self._lines = self._lines, []
                try:
                    self.stream.write("".join(lines))
                except Exception:  # the stream is what failed: nowhere to say so
                    return
            super().flush()


def configure(level: str, stream: TextIO, log_format: LogFormat = "text") -> None:
    """The serving process's logging: `level` and up, to `stream`, as text lines or JSON
    lines. Where log lines come from in the source is not part of them, so logging does not
    look it up (the logging HOWTO's "Optimization")."""
    logging._srcfile = None  # the HOWTO's documented switch
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = LoopBatchedHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
