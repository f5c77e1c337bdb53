"""Structured logs: one JSON object per line on stderr, for every process of the backbone.

Secrets stay out by construction (settings, keys and issuers redact their repr), and the
access log records the path only, never a query string or a header.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        # Fields passed with `extra=` become keys of their own, so they can be queried.
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def config(level: str | None = None) -> dict[str, Any]:
    """A `logging.config.dictConfig` for our code, uvicorn and faust alike."""
    level = (level or os.environ.get("BACKBONE_LOG_LEVEL", "info")).upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's access log is replaced by the API's own request log.
            "uvicorn.access": {"level": "WARNING"},
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "aiokafka": {"level": "WARNING"},
            "cassandra": {"level": "WARNING"},
            # Cassandra 5 warns on every prepare in a session bound to a keyspace; each of our
            # sessions uses exactly one keyspace, so the ambiguity it warns of cannot arise.
            "cassandra.protocol": {"level": "ERROR"},
        },
    }


def setup(level: str | None = None) -> None:
    logging.config.dictConfig(config(level))
