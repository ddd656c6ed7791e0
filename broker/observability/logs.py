"""The broker's own log lines: text for people (the default) or one JSON object per line.

``log_format: json`` is for log pipelines that parse lines (Loki, CloudWatch, Elastic): each
record becomes ``{"time", "level", "logger", "message"}``, plus ``requestId`` inside a
request (the ID the STS answer and the audit event carry, so the three can be joined) and
``exception`` with the traceback when there is one. :func:`configure_logging` sets the
root logger; uvicorn's own loggers are left unconfigured in JSON mode (no ``log_config``)
so that they propagate to it and come out as JSON too.

The messages are the same in both formats; none holds a secret (the rule every log call
in the broker follows), JSON only changes the envelope.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

from broker.observability.context import current_request

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = current_request()
        if context is not None:
            line["requestId"] = context.request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """The root logger's one handler, on standard error, in ``log_format``."""
    handler = logging.StreamHandler(sys.stderr)
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """What to pass uvicorn as ``log_config``: its own text setup, or none for JSON."""
    if log_format == "json":
        return None
    from uvicorn.config import LOGGING_CONFIG  # noqa: PLC0415 - serve only

    return LOGGING_CONFIG
