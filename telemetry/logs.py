"""Log set-up for every process: text (default) or JSON lines (``STREAMPLANE_LOG_FORMAT=json``).

JSON lines carry the usual fields (time, level, logger, message) and, when the caller passes
them with ``extra=``, the control-log coordinates of what the line is about: ``event_id``,
``seq``, ``epoch``, ``causation_id``, ``correlation_id``, ``command_id``, ``server_id``,
``stream_id``. So a log line leads to the event (``streamplane audit``) and back.
python-json-logger does the formatting (well kept, stdlib ``logging`` underneath).
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: the ``extra=`` keys a JSON line keeps (others are dropped: no accidental secrets)
EVENT_FIELDS = (
    "event_id",
    "seq",
    "epoch",
    "causation_id",
    "correlation_id",
    "command_id",
    "server_id",
    "stream_id",
)


class _Formatter(JsonFormatter):
    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        for key in list(log_data):
            if key not in _KEEP and key not in EVENT_FIELDS:
                del log_data[key]


_KEEP = frozenset({"time", "level", "logger", "message", "exc_info", "stack_info"})


def json_formatter() -> logging.Formatter:
    return _Formatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601, UTC
    )


def configure(level: str = "INFO", fmt: str = "text", *, stream: TextIO | None = None) -> None:
    """Set up the root logger once per process (the CLI calls it in ``main``)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log_format: expected 'text' or 'json', got {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
