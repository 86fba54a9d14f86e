"""``streamplane worker``: run a worker agent in the foreground until SIGTERM/SIGINT.

Bad settings (flags or ``STREAMPLANE_*``) end it with exit code 2 and one line,
``error: <field>: <message>``, as every streamplane command (docs/cli.md). The worker says so
itself: it also runs as ``python -m worker_agent``, outside the control plane's CLI, whose
error handling a worker host does not have (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from telemetry.logs import LogFormat, LogLevel, setup_logging
from worker_agent.agent import WorkerAgent
from worker_agent.errors import ConfigError
from worker_agent.settings import WorkerSettings

USAGE = 2  # exit code of a usage error (docs/cli.md)


def worker(
    server_id: Annotated[str | None, typer.Option(help="Worker id (default: host name).")] = None,
    max_streams: Annotated[int | None, typer.Option(help="Capacity: streams it may run.")] = None,
    handler: Annotated[
        str | None, typer.Option(help="demo, command, or package.module:Class.")
    ] = None,
    ip: Annotated[str | None, typer.Option(help="Address reported in heartbeats.")] = None,
    port: Annotated[int | None, typer.Option(help="Port reported in heartbeats.")] = None,
    zone: Annotated[str | None, typer.Option(help="Availability zone.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    bootstrap: Annotated[str | None, typer.Option(help="Kafka bootstrap host:port.")] = None,
    topic_prefix: Annotated[str | None, typer.Option(help="Topic name prefix.")] = None,
    heartbeat_interval: Annotated[float | None, typer.Option(help="Seconds.")] = None,
    heartbeat_lease: Annotated[
        float | None,
        typer.Option(help="Stop every stream after this many seconds without a heartbeat through."),
    ] = None,
    command: Annotated[
        str | None, typer.Option(help="Command template for the command handler.")
    ] = None,
    demo_cpu_ms: Annotated[float | None, typer.Option(help="Demo: CPU ms per tick.")] = None,
    demo_fail_probability: Annotated[
        float | None, typer.Option(help="Demo: chance a start fails.")
    ] = None,
    demo_fail_stream: Annotated[
        list[str] | None, typer.Option(help="Demo: a stream id that always fails (repeatable).")
    ] = None,
    demo_seed: Annotated[int | None, typer.Option(help="Demo: random seed.")] = None,
    demo_start_delay: Annotated[
        float | None, typer.Option(help="Demo: seconds a stream reports starting before running.")
    ] = None,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(case_sensitive=False, help="Log level (env STREAMPLANE_LOG_LEVEL)."),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option(help="text or json lines (env STREAMPLANE_LOG_FORMAT; default text)."),
    ] = None,
) -> None:
    """Run a worker agent: heartbeat, follow the desired set, run streams (STREAMPLANE_* env
    variables set the defaults; flags win). Stops gracefully on SIGTERM/SIGINT."""
    overrides: dict[str, Any] = {
        "server_id": server_id,
        "max_streams": max_streams,
        "handler": handler,
        "ip": ip,
        "port": port,
        "zone": zone,
        "tags": tuple(tag) if tag else None,
        "kafka_bootstrap": bootstrap,
        "topic_prefix": topic_prefix,
        "heartbeat_interval": heartbeat_interval,
        "heartbeat_lease": heartbeat_lease,
        "command_template": command,
        "demo_cpu_ms": demo_cpu_ms,
        "demo_fail_probability": demo_fail_probability,
        "demo_fail_streams": tuple(demo_fail_stream) if demo_fail_stream else None,
        "demo_seed": demo_seed,
        "demo_start_delay": demo_start_delay,
    }
    try:
        setup_logging(level=log_level, fmt=log_format)
        settings = WorkerSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        typer.echo(settings_error(exc), err=True)
        raise typer.Exit(USAGE) from None
    try:
        asyncio.run(run_worker(settings))
    except ConfigError as exc:
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        raise typer.Exit(USAGE) from None


def settings_error(exc: ValidationError) -> str:
    """``error: field: message (got value)`` for every error, on one line (the shape of
    ``control_plane.tools.exits``); values of fields that may hold a secret are left out."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or exc.title
        value = error.get("input")
        shown = isinstance(value, str | int | float) and field not in _SECRETS
        parts.append(f"{field}: {error['msg']}" + (f" (got {value!r:.80})" if shown else ""))
    return "error: " + "; ".join(parts)


#: settings whose value may carry a secret (a command line with a token)
_SECRETS = frozenset({"command_template"})


async def run_worker(settings: WorkerSettings) -> None:
    """Run an agent until SIGTERM or SIGINT, then shut it down gracefully."""
    agent = WorkerAgent(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, agent.request_stop)
    try:
        await agent.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
