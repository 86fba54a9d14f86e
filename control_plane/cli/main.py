"""``streamplane``: the command line of the control plane.

Commands send a command to the orchestrator, wait for its outcome event and print it
(exit code 1 when rejected, 3 when no orchestrator answered). Lists fold the control log
and say the ``seq`` they are as of. How every command ends (exit codes, the one ``error:``
line) is :mod:`control_plane.tools.exits`; docs/cli.md lists it all.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import typer

from control_plane.cli.alerts import alerts, monitor
from control_plane.cli.audit import audit_app
from control_plane.cli.audit_history import audit_churn, audit_instance
from control_plane.cli.check import check
from control_plane.cli.drift import audit_drift
from control_plane.cli.enrollment import add_enrollment_commands
from control_plane.cli.read_side import api, projector, read_model
from control_plane.cli.simulate import simulate
from control_plane.cli.tokens import tokens_app
from control_plane.client import read_state, send_command
from control_plane.orchestrator.settings import OrchestratorSettings
from control_plane.tools.decisions import app as decisions_app
from control_plane.tools.demo import demo
from control_plane.tools.exits import cli_app
from control_plane.tools.infra.cli import infra_app
from control_plane.tools.options import (
    AsJson,
    Bootstrap,
    LogFormatOption,
    LogLevelOption,
    OperatorSettings,
    Prefix,
    ServerId,
    StreamId,
    Wait,
    check_id,
    parse_params,
)
from events import commands as cmd
from events.topics import ALL_TOPICS, Topics
from projections.fold.health import system_health
from projections.fold.state import ClusterState
from telemetry.logs import setup_logging
from worker_agent.cli import worker

app = cli_app(help="streamplane: event-sourced control plane for long-running streams.")
streams_app = cli_app(help="Add, remove, list and show streams.")
instances_app = cli_app(help="List, drain, resize, enroll and revoke instances.")
app.add_typer(infra_app, name="infra")
app.add_typer(streams_app, name="streams")
app.add_typer(instances_app, name="instances")
app.add_typer(
    decisions_app,
    name="decisions",
    help="Decision goldens: cut a recorded run into a golden file, replay, regenerate.",
)
audit_app.command("drift")(audit_drift)
audit_app.command("instance")(audit_instance)
audit_app.command("churn")(audit_churn)
app.add_typer(
    audit_app,
    name="audit",
    help="Replay history: state at a time, why a stream or instance moved, churn, verify, drift.",
)
app.command("worker")(worker)
app.command("projector")(projector)
api_app = cli_app(no_args_is_help=False, invoke_without_command=True)
api_app.callback()(api)
api_app.add_typer(tokens_app, name="tokens")
app.add_typer(api_app, name="api")
app.command("read-model")(read_model)
app.command("demo")(demo)
app.command("monitor")(monitor)
app.command("alerts")(alerts)
app.command("check")(check)
app.command("simulate")(simulate)


def _settings(bootstrap: str | None, prefix: str | None) -> OrchestratorSettings:
    overrides: dict[str, Any] = {"kafka_bootstrap": bootstrap, "topic_prefix": prefix}
    return OrchestratorSettings(**{k: v for k, v in overrides.items() if v is not None})


def _send(
    bootstrap: str | None, prefix: str | None, build: Any, wait: float, **fields: Any
) -> None:
    """Send the command and print its outcome; a rejection (exit 1) or no answer (exit 3)
    is raised to :mod:`control_plane.tools.exits`."""
    s = _settings(bootstrap, prefix)
    fields["principal"] = OperatorSettings().who()
    done, caused = asyncio.run(
        send_command(s.kafka_access, Topics(s.topic_prefix), build, wait_s=wait, **fields)
    )
    for e in caused:
        typer.echo(f"  seq {e.seq}: {e.type} {e.subject or ''} {getattr(e, 'reason', '')}".rstrip())  # type: ignore[attr-defined]
    typer.echo(f"ok (seq {done.seq}): {getattr(done, 'detail', '')}")


def _state(bootstrap: str | None, prefix: str | None) -> ClusterState:
    s = _settings(bootstrap, prefix)
    return asyncio.run(read_state(s.kafka_access, Topics(s.topic_prefix))).state


@app.command()
def orchestrator(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    node_id: Annotated[
        str | None, typer.Option(callback=check_id, help="Name in LeaderElected events.")
    ] = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run an orchestrator (active if elected, else a hot standby) until SIGTERM/SIGINT."""
    from control_plane.orchestrator import run_orchestrator

    setup_logging(level=log_level, fmt=log_format)
    overrides: dict[str, Any] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": topic_prefix,
        "node_id": node_id,
    }
    settings = OrchestratorSettings(**{k: v for k, v in overrides.items() if v is not None})
    asyncio.run(run_orchestrator(settings))


@streams_app.command("add")
def streams_add(
    stream_id: StreamId,
    weight: Annotated[int, typer.Option(help="Load units (default 1).")] = 1,
    priority: Annotated[int, typer.Option(help="Higher is placed first when short.")] = 0,
    zone: Annotated[str | None, typer.Option(help="Must run in this zone.")] = None,
    anti_affinity: Annotated[str | None, typer.Option(help="Spread streams of this group.")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="key=value for the handler (repeatable).")
    ] = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    wait: Wait = 30.0,
) -> None:
    """Register a stream; it is placed at once if there is capacity."""
    params = parse_params(param)
    _send(
        bootstrap,
        topic_prefix,
        cmd.RegisterStream,
        wait,
        stream_id=stream_id,
        weight=weight,
        priority=priority,
        zone=zone,
        anti_affinity=anti_affinity,
        params=params,
    )


@streams_app.command("remove")
def streams_remove(
    stream_id: StreamId, bootstrap: Bootstrap = None, topic_prefix: Prefix = None, wait: Wait = 30.0
) -> None:
    """Deregister a stream; its owner stops it."""
    _send(bootstrap, topic_prefix, cmd.DeregisterStream, wait, stream_id=stream_id)


def _stream_row(state: ClusterState, s: Any) -> dict[str, Any]:
    m = s.migration_state
    return {
        "stream_id": s.stream_id,
        "server_id": s.server_id,
        "status": s.status.value,
        "migration": None
        if m is None
        else {"from": m.from_server, "to": m.to_server, "deadline": m.deadline.isoformat()},
        "weight": s.weight,
        "priority": s.priority,
        "as_of_seq": state.seq,
    }


@streams_app.command("list")
def streams_list(
    as_json: AsJson = False, bootstrap: Bootstrap = None, topic_prefix: Prefix = None
) -> None:
    """Every stream, its owner and status (as of the log's last seq)."""
    state = _state(bootstrap, topic_prefix)
    rows = [
        _stream_row(state, s) for s in sorted(state.streams.values(), key=lambda s: s.stream_id)
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    typer.echo(f"# as of seq {state.seq}, {len(rows)} streams")
    for r in rows:
        mig = f" -> {r['migration']['to']}" if r["migration"] else ""
        typer.echo(f"{r['stream_id']:<24} {r['status']:<11} {r['server_id'] or '-'}{mig}")


@streams_app.command("show")
def streams_show(
    stream_id: StreamId, bootstrap: Bootstrap = None, topic_prefix: Prefix = None
) -> None:
    """One stream in detail (JSON)."""
    state = _state(bootstrap, topic_prefix)
    s = state.streams.get(stream_id)
    if s is None:
        typer.echo(f"error: stream_id: no stream {stream_id!r} (as of seq {state.seq})", err=True)
        raise typer.Exit(1)
    row = _stream_row(state, s) | {
        "failure_count": s.failure_count,
        "failed_on": list(s.failed_on),
        "last_error": s.last_error,
        "assigned_at": s.assigned_at.isoformat() if s.assigned_at else None,
        "params": dict(s.params),
    }
    typer.echo(json.dumps(row, indent=2))


@instances_app.command("list")
def instances_list(
    as_json: AsJson = False, bootstrap: Bootstrap = None, topic_prefix: Prefix = None
) -> None:
    """Every instance, its status and load (as of the log's last seq)."""
    state = _state(bootstrap, topic_prefix)
    rows: list[dict[str, Any]] = [
        {
            "server_id": i.server_id,
            "incarnation": i.incarnation,
            "status": i.status.value,
            "draining": i.draining,
            "current_streams": i.current_streams,
            "max_streams": i.max_streams,
            "load": i.load,
            "failure_count": i.failure_count,
            "as_of_seq": state.seq,
        }
        for i in sorted(state.instances.values(), key=lambda i: i.server_id)
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    typer.echo(f"# as of seq {state.seq}, {len(rows)} instances")
    for r in rows:
        bar = "#" * r["load"] if r["max_streams"] <= 40 else f"{r['load']}"
        drain = " draining" if r["draining"] else ""
        typer.echo(
            f"{r['server_id']:<16} {r['status']:<11}{drain} "
            f"{r['current_streams']:>4}/{r['max_streams']:<4} {bar}"
        )


@instances_app.command("drain")
def instances_drain(
    server_id: ServerId, bootstrap: Bootstrap = None, topic_prefix: Prefix = None, wait: Wait = 30.0
) -> None:
    """Stop giving the instance streams and move its streams away gradually."""
    _send(bootstrap, topic_prefix, cmd.DrainInstance, wait, server_id=server_id)


@instances_app.command("undrain")
def instances_undrain(
    server_id: ServerId, bootstrap: Bootstrap = None, topic_prefix: Prefix = None, wait: Wait = 30.0
) -> None:
    """Cancel a drain."""
    _send(bootstrap, topic_prefix, cmd.UndrainInstance, wait, server_id=server_id)


add_enrollment_commands(instances_app, _send)


@instances_app.command("capacity")
def instances_capacity(
    server_id: ServerId,
    max_streams: Annotated[int, typer.Argument(help="Streams it may run (0 and up).")],
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    wait: Wait = 30.0,
) -> None:
    """Set an instance's capacity (refused below its current load unless drained)."""
    _send(
        bootstrap, topic_prefix, cmd.SetCapacity, wait, server_id=server_id, max_streams=max_streams
    )


@app.command()
def rebalance(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only plan (the plan is logged).")
    ] = False,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    wait: Wait = 30.0,
) -> None:
    """Ask for a rebalance (intelligent_rebalance): a plan, executed gradually unless --dry-run."""
    _send(bootstrap, topic_prefix, cmd.RequestRebalance, wait, dry_run=dry_run)


@app.command()
def recover(bootstrap: Bootstrap = None, topic_prefix: Prefix = None, wait: Wait = 60.0) -> None:
    """Emergency recovery: fail silent instances, re-place orphans, re-sync workers.

    Also leaves maintenance mode."""
    _send(bootstrap, topic_prefix, cmd.EmergencyRecovery, wait)


@app.command()
def health(
    as_json: AsJson = False, bootstrap: Bootstrap = None, topic_prefix: Prefix = None
) -> None:
    """The seed's SystemHealth, from the control log."""
    state = _state(bootstrap, topic_prefix)
    h = system_health(state)
    data = {f: getattr(h, f) for f in h.__dataclass_fields__} | {
        "overall_health": h.overall_health().value,
        "needs_intervention": h.needs_intervention(),
        "as_of_seq": state.seq,
        "findings": state.finding_count,
    }
    typer.echo(json.dumps(data, indent=None if as_json else 2))


@app.command()
def topics(bootstrap: Bootstrap = None, topic_prefix: Prefix = None) -> None:
    """Create every streamplane topic (partitions, compaction and retention as docs/events.md
    lists them) if missing; idempotent. Run it before anything else touches a new cluster:
    a broker that auto-creates topics would give them its own defaults."""
    from projections.io.topics import ensure_topics

    s = _settings(bootstrap, topic_prefix)
    names = Topics(s.topic_prefix)
    asyncio.run(ensure_topics(s.kafka_access, names))
    for spec in ALL_TOPICS:
        typer.echo(f"{names.name(spec)}: {spec.partitions} partition(s)")
    typer.echo(f"topics under {s.topic_prefix!r} ready on {s.kafka_bootstrap}")


@app.command()
def schemas(
    check_only: Annotated[
        bool, typer.Option("--check", help="Fail if docs/schemas is stale.")
    ] = False,
) -> None:
    """Write (or --check) docs/schemas/*.json and the type tables in docs/events.md."""
    from events.schemas import main as schemas_main

    raise typer.Exit(schemas_main(["--check"] if check_only else []))


def main() -> None:
    """Entry point ``streamplane``: every command ends in an exit code and at most one
    ``error:`` line, never a traceback (:class:`control_plane.tools.exits.StreamplaneGroup`)."""
    app()


__all__ = ["app", "main"]
