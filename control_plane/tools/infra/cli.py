"""`streamplane infra ...`: start, inspect and stop the local Kafka and PostgreSQL.

An :class:`InfraError` (Java missing, a port taken, a service that did not come up) ends
the command with its one ``error:`` line and exit code 1 (:mod:`control_plane.tools.exits`)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError

from control_plane.tools.exits import cli_app
from control_plane.tools.infra import api, compose_secure, kafka, secure
from control_plane.tools.infra.acls import all_acls
from events.topics import DEFAULT_PREFIX
from projections.io.kafka import kafka_error

infra_app = cli_app(
    name="infra",
    help="Local Kafka (KRaft, from Maven Central jars) and PostgreSQL without Docker.",
)


@infra_app.command()
def up(
    brokers: Annotated[int, typer.Option(help="Kafka nodes: 1, 3 (fault tests) or 0.")] = 1,
    no_postgres: Annotated[bool, typer.Option("--no-postgres", help="Skip PostgreSQL.")] = False,
    secure: Annotated[
        bool,
        typer.Option(
            "--secure",
            help="The SASL/SCRAM cluster with ACLs (own ports): one principal per role, "
            "credentials in 0600 files (docs/infra.md, 'Secure mode').",
        ),
    ] = False,
    topic_prefix: Annotated[
        str, typer.Option(help="With --secure: the topic prefix the roles' ACLs cover.")
    ] = DEFAULT_PREFIX,
) -> None:
    """Start Kafka and PostgreSQL (a no-op for what already runs), then print `status`."""
    started = time.monotonic()
    api.ensure_up(
        brokers=brokers, postgres=not no_postgres, secure_mode=secure, topic_prefix=topic_prefix
    )
    typer.echo(f"# up in {time.monotonic() - started:.1f}s", err=True)
    if secure and brokers:
        where = api.credentials_dir(brokers)
        typer.echo(
            f"# credentials: {where}/<principal>.password (0600), ACLs for topics "
            f"{topic_prefix}.*; run a process as a role with: set -a; . {where}/worker.env; "
            "set +a",
            err=True,
        )
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
    api.down(purge=purge)


@infra_app.command("kill-broker")
def kill_broker(node_id: int, brokers: Annotated[int, typer.Option()] = 3) -> None:
    """SIGKILL one Kafka node (chaos testing by hand)."""
    api.kill_broker(node_id, brokers=brokers)


@infra_app.command("start-broker")
def start_broker(node_id: int, brokers: Annotated[int, typer.Option()] = 3) -> None:
    """Start one killed or stopped Kafka node again."""
    api.start_broker(node_id, brokers=brokers)


@infra_app.command("compose-secrets")
def compose_secrets(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where to write them: a sub-directory per secrets volume.")
    ],
    kafka_uid: Annotated[
        int, typer.Option(help="Owner of the broker's files (the Kafka image's user).")
    ] = compose_secure.KAFKA_IMAGE_UID,
    app_uid: Annotated[
        int, typer.Option(help="Owner of the password files (the streamplane image's user).")
    ] = compose_secure.APP_IMAGE_UID,
) -> None:
    """Secure compose (docker-compose.secure.yml): a password per principal, the broker's
    server.properties and its storage format arguments, all 0600, one sub-directory per
    volume (docs/infra.md)."""
    owner = os.geteuid() == 0  # only root may give files away
    names = compose_secure.write_secrets(
        directory, kafka_uid=kafka_uid if owner else None, app_uid=app_uid if owner else None
    )
    typer.echo(f"# {directory}: {', '.join(names)} (0600; no secret printed)")


@infra_app.command()
def grant(
    bootstrap: Annotated[str, typer.Option(help="The secure broker, host:port.")],
    credentials: Annotated[Path, typer.Option(help="The directory holding admin.password (0600).")],
    topic_prefix: Annotated[
        str, typer.Option(help="The topic prefix the roles' ACLs cover.")
    ] = DEFAULT_PREFIX,
) -> None:
    """Create every role's ACLs on TOPIC_PREFIX as the admin (idempotent)."""
    admin = compose_secure.admin_access(bootstrap, credentials)
    try:
        n = kafka.run_async(secure.create_acls(admin, all_acls(topic_prefix)))
    except (TimeoutError, OSError, KafkaError) as exc:  # one line, exit 3 (tools.exits)
        raise kafka_error(exc, f"grant ACLs on {bootstrap}") from exc
    typer.echo(f"# {n} ACL rule(s) for {topic_prefix}.* on {bootstrap}")
