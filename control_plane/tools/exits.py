"""How a ``streamplane`` command ends: its exit code and, when it fails, ONE ``error:`` line.

The exit codes (docs/cli.md)::

    0    done
    1    refused or failed: the orchestrator rejected the command, findings, drift, a
         failure that is neither of the two below
    2    usage: a bad option or argument, an invalid id, a bad setting from the environment
    3    unavailable: Kafka or PostgreSQL unreachable, or no orchestrator answered in time
    130  interrupted (Ctrl-C)

The line is ``error: <field>: <message>``: the field is the option, argument or setting at
fault (``--weight``, ``stream_id``, ``kafka_bootstrap``, ``database_url``), so that the
reader knows what to change. No traceback reaches the user: it goes to the log at DEBUG
(``STREAMPLANE_LOG_LEVEL=DEBUG`` shows it). Credentials in URLs are masked.

One mechanism for every command: :class:`StreamplaneGroup` (the ``cls`` of the CLI's Typer
apps) runs the command line in click's non-standalone mode and hands whatever escapes to
:func:`report`. :func:`reports_errors` does the same for a command mounted elsewhere.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, ParamSpec, TypeVar

import typer
from aiokafka import errors as kafka_errors
from pydantic import ValidationError
from typer._click.exceptions import (  # typer 0.29 carries its own click
    BadOptionUsage,
    BadParameter,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)
from typer.core import TyperGroup

from control_plane.errors import CommandRejectedError, CommandTimeoutError
from control_plane.tools.infra.config import InfraError
from events.errors import EventError
from kafka_auth import KafkaAccessError
from projections.errors import (
    DatabaseError,
    KafkaIOError,
    OffsetOutOfRangeError,
    ProjectionError,
    TopicSetupError,
    UnknownTopicError,
)
from telemetry.logs import setup_logging
from telemetry.metrics import MetricsAddressError
from worker_agent.errors import ConfigError, TransportError

log = logging.getLogger("streamplane.cli")

OK, FAILED, USAGE, UNAVAILABLE, INTERRUPTED = 0, 1, 2, 3, 130
#: loggers a one-shot command keeps quiet below CRITICAL: its ``error:`` line says it all
QUIET = ("aiokafka",)
HINT_DOWN = "is it running? `streamplane infra status` shows the local services"
#: ``scheme://user:password@`` and libpq's ``password=...`` in any message
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")
_PASSWORD = re.compile(r"(password=)\S+", re.IGNORECASE)
#: settings whose value is not repeated in a message (it may hold a secret)
_SECRET_FIELD = re.compile(r"password|secret|token|dsn|url|key|webhook|template", re.IGNORECASE)


class Failure(NamedTuple):
    """What a failed command tells its user: the exit code, the field at fault, why."""

    code: int
    field: str | None
    message: str

    @property
    def line(self) -> str:
        text = " ".join(mask(self.message).split())  # one line, whatever the message holds
        return f"error: {self.field}: {text}" if self.field else f"error: {text}"


def mask(text: str) -> str:
    """``postgresql://user:pw@host/db`` -> ``postgresql://***@host/db``; ``password=pw`` ->
    ``password=***``."""
    return _PASSWORD.sub(r"\1***", _CREDENTIALS.sub(r"\1***@", text))


# --- what went wrong -> a Failure ---------------------------------------------------------


def _hint(param_hint: str | Sequence[str] | None) -> str | None:
    if param_hint is None:
        return None
    hints = [param_hint] if isinstance(param_hint, str) else list(param_hint)
    return " / ".join(h.strip("'\"") for h in hints)


def usage_failure(exc: UsageError) -> Failure:
    """A bad command line, as click found it (parsing, a type, a range, a callback)."""
    if isinstance(exc, NoSuchOption):
        maybe = sorted(exc.possibilities or ())
        suggest = f" (did you mean {', '.join(maybe)}?)" if maybe else ""
        return Failure(USAGE, exc.option_name, f"no such option{suggest}")
    if isinstance(exc, BadOptionUsage):
        return Failure(USAGE, exc.option_name, exc.message)
    if isinstance(exc, BadParameter):
        field = _hint(exc.param_hint)
        if field is None and exc.param is not None:
            field = _hint(exc.param.get_error_hint())
        if isinstance(exc, MissingParameter):
            kind = exc.param_type or (exc.param.param_type_name if exc.param else "parameter")
            return Failure(USAGE, field, f"missing {kind}")
        return Failure(USAGE, field, exc.message)
    return Failure(USAGE, None, exc.message)


def _input(error: Any, field: str) -> str:
    value = error.get("input")
    if value is None or isinstance(value, dict | list | tuple) or _SECRET_FIELD.search(field):
        return ""
    return f" (got {value!r:.80})"


def validation_failure(exc: ValidationError) -> Failure:
    """pydantic's errors (settings from the environment and flags, a command's fields) as
    ``field: message (got value)``, every error of the model on the same line."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or exc.title
        parts.append((field, f"{error['msg']}{_input(error, field)}"))
    first, message = parts[0]
    rest = "".join(f"; {field}: {msg}" for field, msg in parts[1:])
    return Failure(USAGE, first, message + rest)


def _kafka_failure(exc: KafkaIOError) -> Failure:
    if isinstance(exc, UnknownTopicError):
        return Failure(USAGE, "topic_prefix", f"{exc} (run `streamplane topics` first?)")
    if isinstance(exc, TopicSetupError) or not exc.retriable:
        return Failure(FAILED, "kafka_bootstrap", str(exc))
    return Failure(UNAVAILABLE, "kafka_bootstrap", f"{exc} ({HINT_DOWN})")


def _known_failure(exc: BaseException) -> Failure | None:
    if isinstance(exc, UsageError):
        return usage_failure(exc)
    if isinstance(exc, ValidationError):
        return validation_failure(exc)
    if isinstance(exc, CommandRejectedError):
        return Failure(FAILED, "rejected", f"{exc.reason}: {exc.detail}")
    if isinstance(exc, CommandTimeoutError):
        return Failure(UNAVAILABLE, "wait", str(exc))
    if isinstance(exc, KafkaIOError):
        return _kafka_failure(exc)
    if isinstance(exc, DatabaseError) and exc.retriable:
        return Failure(UNAVAILABLE, "database_url", f"{exc} ({HINT_DOWN})")
    if isinstance(exc, DatabaseError):  # the server answered: the message says what it said
        return Failure(FAILED, None, str(exc))
    if isinstance(exc, OffsetOutOfRangeError):
        return Failure(USAGE, "offset", str(exc))
    if isinstance(exc, ProjectionError | InfraError):
        return Failure(FAILED, None, str(exc))
    if isinstance(exc, EventError):
        return Failure(USAGE, exc.field, str(exc))
    if isinstance(exc, ConfigError | MetricsAddressError | KafkaAccessError):  # names the setting
        return Failure(USAGE, None, str(exc))
    if isinstance(exc, TransportError | kafka_errors.KafkaConnectionError):
        return Failure(UNAVAILABLE, "kafka_bootstrap", f"{exc} ({HINT_DOWN})")
    return None


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def failure(exc: BaseException) -> Failure:
    """The exit code and the line for ``exc`` (an exception group: its first known leaf,
    as a ``TaskGroup`` wraps the error that stopped it)."""
    leaves = _leaves(exc)
    for leaf in leaves:
        known = _known_failure(leaf)
        if known is not None:
            return known
    first = leaves[0]
    if isinstance(first, KeyboardInterrupt):
        return Failure(INTERRUPTED, None, "interrupted")
    if isinstance(first, typer.Abort):
        return Failure(FAILED, None, "aborted")
    return Failure(
        FAILED,
        None,
        f"unexpected {type(first).__name__}: {first} "
        "(the traceback is logged at DEBUG: STREAMPLANE_LOG_LEVEL=DEBUG)",
    )


def report(exc: BaseException) -> int:
    """Log ``exc`` with its traceback at DEBUG, print its one ``error:`` line to stderr and
    return the exit code."""
    result = failure(exc)
    log.debug("command failed (exit %d)", result.code, exc_info=exc)
    typer.echo(result.line, err=True)
    return result.code


# --- the mechanism ------------------------------------------------------------------------


def _quiet_logging() -> None:
    """Logging for any command from the environment (a process command sets it up again
    with its own flags): WARNING and up by default, JSON with STREAMPLANE_LOG_FORMAT=json."""
    setup_logging(default_level="WARNING", quiet=QUIET)


class StreamplaneGroup(TyperGroup):
    """A Typer group whose command line ends in an exit code and at most one ``error:``
    line, never a traceback (see the module docstring). ``typer.Typer(cls=...)``."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            _quiet_logging()
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as exc:  # a group without its command: help, then the line
            if exc.message:  # (typer's rich help has printed itself already)
                typer.echo(exc.message)
            code = report(UsageError("missing command", exc.ctx))
        except (typer.Exit, SystemExit):
            raise
        except BaseException as exc:  # the one place that reports them all
            code = report(exc)
        code = code if isinstance(code, int) else OK
        if standalone_mode:
            sys.exit(code)
        return code


P = ParamSpec("P")
R = TypeVar("R")


def reports_errors(command: Callable[P, R]) -> Callable[P, R]:
    """The same treatment for one command function, for when it is mounted on an app of
    its own (outside :class:`StreamplaneGroup`): what escapes becomes the ``error:`` line
    and ``typer.Exit`` with its code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (typer.Exit, SystemExit, UsageError):
            raise
        except Exception as exc:  # reported, with its code
            raise typer.Exit(report(exc)) from exc

    return run


def cli_app(**kwargs: Any) -> typer.Typer:
    """A Typer app of the ``streamplane`` CLI (help on no arguments, no completion
    commands, the one error mechanism)."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(cls=StreamplaneGroup, add_completion=False, **kwargs)


__all__ = [
    "FAILED",
    "INTERRUPTED",
    "OK",
    "UNAVAILABLE",
    "USAGE",
    "Failure",
    "StreamplaneGroup",
    "cli_app",
    "failure",
    "mask",
    "report",
    "reports_errors",
    "usage_failure",
    "validation_failure",
]
