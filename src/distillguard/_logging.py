"""Logging set-up for long-running commands: plain text, or one JSON object per line for log pipelines.

Hand-written rather than a dependency: a JSON formatter is a dozen lines over
the standard library's ``logging``, and ``extra={...}`` fields become keys.

>>> import logging
>>> record = logging.LogRecord("gw", logging.INFO, __file__, 1, "started", None, None)
>>> record.upstream = "http://127.0.0.1:8001/v1"
>>> line = JsonFormatter().format(record)
>>> '"message":"started"' in line and '"upstream":"http://127.0.0.1:8001/v1"' in line
True
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {"time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
                   "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        payload.update({k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")})
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def configure_logging(fmt: str = "text", level: int = logging.INFO) -> None:
    """Route every logger (uvicorn's included) to stderr as text or JSON lines."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
