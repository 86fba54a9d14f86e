"""Log set-up for every process: text (default) or JSON lines (``STREAMPLANE_LOG_FORMAT=json``).

JSON lines carry the usual fields (time, level, logger, message) and, when the caller passes
them with ``extra=``, the control-log coordinates of what the line is about: ``event_id``,
``seq``, ``epoch``, ``causation_id``, ``correlation_id``, ``command_id``, ``server_id``,
``stream_id``. So a log line leads to the event (``streamplane audit``) and back.
python-json-logger does the formatting (well kept, stdlib ``logging`` underneath).

Every command calls :func:`setup_logging` once, first: it reads :class:`LogSettings`
(``STREAMPLANE_LOG_FORMAT``, ``STREAMPLANE_LOG_LEVEL``; the command's flags win) and
configures the root logger. docs/cli.md ("Logs") is the user's side of it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["text", "json"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
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


class LogSettings(BaseSettings):
    """How a process logs (env ``STREAMPLANE_LOG_FORMAT``, ``STREAMPLANE_LOG_LEVEL``; the
    ``--log-format`` / ``--log-level`` flags win). Every command reads it once, before
    anything else: a bad value is a usage error naming the field, not a crash later."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    log_format: LogFormat = "text"
    #: None: the command's own default (INFO for a process, WARNING for a one-shot command)
    log_level: LogLevel | None = None

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a line is written: a command run inside a
    test runner (which swaps ``sys.stderr``) must not keep writing to a closed stream."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:  # StreamHandler.setStream; nothing to keep
        pass


def _quiet_filter(names: tuple[str, ...]) -> logging.Filter:
    """Drops records below CRITICAL from the loggers ``names`` (and their children)."""
    prefixes = tuple(f"{n}." for n in names)

    def keep(record: logging.LogRecord) -> bool:
        mine = record.name in names or record.name.startswith(prefixes)
        return not mine or record.levelno >= logging.CRITICAL

    filt = logging.Filter()
    filt.filter = keep  # type: ignore[method-assign]
    return filt


#: loggers whose repeats are thinned (:class:`RepeatFilter`): aiokafka logs every reconnect
#: attempt, ten a second per connection while a broker is away
NOISY = ("aiokafka",)
#: a noisy logger's same message is shown at most once in this many seconds
REPEAT_WINDOW = 10.0


class RepeatFilter(logging.Filter):
    """Thins the repeats of a noisy library: a record of ``names`` (or their children) whose
    message (the template, before its arguments) was shown less than ``window`` seconds ago
    is dropped; the next one shown after that says how many were dropped. Other loggers'
    records always pass. Time is the records' own (``created``)."""

    def __init__(self, names: tuple[str, ...], window: float = REPEAT_WINDOW) -> None:
        super().__init__()
        self.names, self.window = names, window
        self._prefixes = tuple(f"{n}." for n in names)
        #: (logger, level, template) -> (when last shown, dropped since)
        self._shown: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        if name not in self.names and not name.startswith(self._prefixes):
            return True
        key = (name, record.levelno, str(record.msg))
        shown = self._shown.get(key)
        if shown is not None and record.created - shown[0] < self.window:
            self._shown[key] = (shown[0], shown[1] + 1)
            return False
        if shown is not None and shown[1]:
            record.msg = f"{record.msg} ({shown[1]} more like it in {self.window:g} s not shown)"
        if len(self._shown) > 1000:  # bounded: templates are few, but never grow without end
            self._shown.clear()
        self._shown[key] = (record.created, 0)
        return True


def configure(
    level: str = "INFO",
    fmt: str = "text",
    *,
    stream: TextIO | None = None,
    quiet: tuple[str, ...] = (),
) -> None:
    """Set up the root logger once per process (the CLI calls it in ``main``). ``quiet``:
    loggers whose lines below CRITICAL are dropped (a one-shot command says what failed in
    its own ``error:`` line; aiokafka's connection errors would only repeat it). Below DEBUG,
    aiokafka's repeated lines are thinned (:class:`RepeatFilter`)."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log_format: expected 'text' or 'json', got {fmt!r}")
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(json_formatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    if quiet and level.upper() != "DEBUG":
        handler.addFilter(_quiet_filter(quiet))
    if level.upper() != "DEBUG":  # DEBUG shows everything
        handler.addFilter(RepeatFilter(NOISY))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())


def setup_logging(
    *,
    level: str | None = None,
    fmt: str | None = None,
    default_level: str = "INFO",
    quiet: tuple[str, ...] = (),
) -> LogSettings:
    """Read :class:`LogSettings` (the environment, then ``level``/``fmt`` from the command's
    flags when given) and configure the root logger with them. Raises pydantic's
    ``ValidationError`` naming ``log_format`` or ``log_level`` for a bad value."""
    overrides: dict[str, Any] = {"log_level": level, "log_format": fmt}
    settings = LogSettings(**{k: v for k, v in overrides.items() if v is not None})
    configure(settings.log_level or default_level, settings.log_format, quiet=quiet)
    return settings
