"""Logging for `docent serve`: JSON lines (or plain text) carrying the request id, for Docent and uvicorn."""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from core.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("docent_request_id", default=None)
"""The id of the request being served in this context (set by the HTTP layer's middleware)."""


def current_request_id() -> str | None:
    """The id of the request being served in this context (None outside one)."""
    return REQUEST_ID.get()


# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged as a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# uvicorn passes `color_message` (its message with ANSI colours) as an extra.
_OWN = frozenset({"request_id", "color_message"})
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps every record with the id of the request being served (`-` outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Never drops a record; sets `record.request_id` unless the caller set one."""
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, any `extra` fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _OWN and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def log_level(settings: Settings) -> str:
    """DOCENT_LOG_LEVEL as a logging level name; an unknown name is a clear error."""
    name = settings.log_level.strip().upper()
    if not isinstance(logging.getLevelName(name), int):
        raise ValueError(
            f"DOCENT_LOG_LEVEL: unknown level {settings.log_level!r}; use debug, info, warning or error"
        )
    return name


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict (uvicorn's `log_config`): one stderr handler for every logger,
    JSON lines when DOCENT_LOG_FORMAT=json, else text. uvicorn's access log is off: the observability
    middleware writes one `docent.access` line per request instead.
    """
    level = log_level(settings)
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if settings.log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"docent": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "docent",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "uvicorn": {"level": level, "handlers": ["console"], "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            # One line per outgoing HTTP call (model probes, provider calls) would drown the access log.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }
