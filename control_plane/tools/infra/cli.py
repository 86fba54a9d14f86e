"""`streamplane infra ...`: start, inspect and stop the local Kafka and PostgreSQL."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from control_plane.tools.infra import api
from control_plane.tools.infra.config import InfraError

infra_app = typer.Typer(
    name="infra",
    help="Local Kafka (KRaft, from Maven Central jars) and PostgreSQL without Docker.",
    no_args_is_help=True,
)


def _fail(exc: InfraError) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(code=1)


@infra_app.command()
def up(
    brokers: Annotated[int, typer.Option(help="Kafka nodes: 1, 3 (fault tests) or 0.")] = 1,
    no_postgres: Annotated[bool, typer.Option("--no-postgres", help="Skip PostgreSQL.")] = False,
) -> None:
    """Start Kafka and PostgreSQL (a no-op for what already runs), then print `status`."""
    started = time.monotonic()
    try:
        api.ensure_up(brokers=brokers, postgres=not no_postgres)
    except InfraError as exc:
        raise _fail(exc) from exc
    typer.echo(f"# up in {time.monotonic() - started:.1f}s", err=True)
    status(export=False)


@infra_app.command()
def status(
    export: Annotated[
        bool, typer.Option("--export", help="Print `export` lines, also STREAMPLANE_* names.")
    ] = False,
) -> None:
    """Print KAFKA_BOOTSTRAP=... and DATABASE_URL=... lines (eval-able) and log locations."""
    for line in api.status_lines(export=export):
        typer.echo(line)


@infra_app.command()
def down(
    purge: Annotated[bool, typer.Option("--purge", help="Delete data too.")] = False,
) -> None:
    """Stop every Kafka node and PostgreSQL (SIGTERM, then SIGKILL after a grace period)."""
    try:
        api.down(purge=purge)
    except InfraError as exc:
        raise _fail(exc) from exc


@infra_app.command("kill-broker")
def kill_broker(node_id: int, brokers: Annotated[int, typer.Option()] = 3) -> None:
    """SIGKILL one Kafka node (chaos testing by hand)."""
    api.kill_broker(node_id, brokers=brokers)


@infra_app.command("start-broker")
def start_broker(node_id: int, brokers: Annotated[int, typer.Option()] = 3) -> None:
    """Start one killed or stopped Kafka node again."""
    try:
        api.start_broker(node_id, brokers=brokers)
    except InfraError as exc:
        raise _fail(exc) from exc
