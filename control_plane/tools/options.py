"""Options and arguments the ``streamplane`` commands share, with their checks.

A value is checked where it is parsed, so that a bad one is a usage error (exit code 2)
naming the option before anything connects anywhere: ids follow the contract's pattern
(``events.ids.ID_PATTERN``), ``--param`` is ``key=value``.
"""

from __future__ import annotations

import getpass
import re
from typing import Annotated

import typer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.ids import ID_PATTERN
from telemetry.logs import LogFormat, LogLevel

_ID = re.compile(ID_PATTERN)
ID_RULE = "1 to 128 letters, digits or . _ : -"


class OperatorSettings(BaseSettings):
    """Who the CLI's commands are recorded as issued by (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    #: the principal of the commands this CLI sends (default: the OS user)
    principal: str | None = Field(default=None, min_length=1, max_length=128)

    def who(self) -> str | None:
        """``principal``, else the OS user; None when neither is known (no such user)."""
        if self.principal:
            return self.principal
        try:
            return getpass.getuser()[:128] or None
        except (OSError, KeyError):  # no login name and no passwd entry for the uid
            return None


def check_id(value: str | None) -> str | None:
    """An id of the contract (stream, server, node), or a usage error saying the rule."""
    if value is not None and not _ID.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a valid id ({ID_RULE})")
    return value


def parse_params(values: list[str] | None) -> dict[str, str]:
    """``["url=rtsp://x", "fps=5"]`` -> a dict; an item without ``key=`` is a usage error."""
    params: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {item!r}", param_hint="--param")
        params[key] = value
    return params


StreamId = Annotated[str, typer.Argument(callback=check_id, help="The stream's id.")]
ServerId = Annotated[str, typer.Argument(callback=check_id, help="The instance's server id.")]
Bootstrap = Annotated[
    str | None, typer.Option(help="Kafka bootstrap (env STREAMPLANE_KAFKA_BOOTSTRAP).")
]
Prefix = Annotated[str | None, typer.Option(help="Topic prefix (env STREAMPLANE_TOPIC_PREFIX).")]
Wait = Annotated[float, typer.Option(min=0, help="Seconds to wait for the outcome.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON.")]
LogLevelOption = Annotated[
    LogLevel | None,
    typer.Option(
        "--log-level", case_sensitive=False, help="Log level (env STREAMPLANE_LOG_LEVEL)."
    ),
]
LogFormatOption = Annotated[
    LogFormat | None,
    typer.Option(help="text or json lines (env STREAMPLANE_LOG_FORMAT; default text)."),
]

__all__ = [
    "AsJson",
    "Bootstrap",
    "ID_RULE",
    "LogFormatOption",
    "LogLevelOption",
    "Prefix",
    "ServerId",
    "StreamId",
    "Wait",
    "check_id",
    "parse_params",
]
