"""``streamplane audit``: time travel and verification over the control log (read-only).

- ``audit state [--at TIME | --seq N | --offset N] [--json]``: fold the log up to a moment
  and print what the system believed then: counts, instances, streams.
- ``audit stream ID [--json]``: the chain of events that moved or changed a stream, with
  ``reason`` and ``causationid`` ("why did stream 42 move?").
- ``audit verify [--json]``: replay the whole log; report findings, seq gaps, dead letters
  and the digest, and check the latest snapshot against the log at its offset. Exit code 1
  when anything is wrong, 3 when Kafka did not answer (:mod:`control_plane.tools.exits`).

Mount with ``app.add_typer(audit_app, name="audit")``. Nothing here writes to Kafka.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from control_plane.orchestrator.settings import OrchestratorSettings
from control_plane.tools.exits import cli_app
from control_plane.tools.options import AsJson, Bootstrap, Prefix, StreamId
from events.topics import Topics
from kafka_auth import Brokers
from projections.fold.audit import StreamHistory, follow_stream, summarize
from projections.fold.canonical import state_digest
from projections.fold.state import ClusterState, FindingKind
from projections.io.history import latest_snapshot, read_events, state_at
from projections.io.replay import ReplayResult, replay

log = logging.getLogger("streamplane.audit")

audit_app = cli_app(
    help="Time travel over the control log: past states, stream histories, verification.",
)

UseSnapshot = Annotated[
    bool,
    typer.Option("--snapshot/--no-snapshot", help="Start from the latest snapshot if it helps."),
]


def resolve_topics(bootstrap: str | None, prefix: str | None) -> tuple[Brokers, Topics]:
    overrides: dict[str, Any] = {"kafka_bootstrap": bootstrap, "topic_prefix": prefix}
    s = OrchestratorSettings(**{k: v for k, v in overrides.items() if v is not None})
    return s.kafka_access, Topics(s.topic_prefix)


def run(coro: Any) -> Any:
    """Run ``coro``; a Kafka failure is raised to :mod:`control_plane.tools.exits` (exit 3)."""
    return asyncio.run(coro)


def parse_time(text: str, *, option: str = "--at") -> datetime:
    """ISO 8601; a time without a zone is taken as UTC (``option`` names it in an error)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(f"not an ISO 8601 time: {text!r}", param_hint=option) from exc
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- audit state --------------------------------------------------------------------------


def _instance_rows(state: ClusterState) -> list[dict[str, Any]]:
    return [
        {
            "server_id": i.server_id,
            "incarnation": i.incarnation,
            "status": i.status.value,
            "draining": i.draining,
            "current_streams": i.current_streams,
            "load": i.load,
            "max_streams": i.max_streams,
        }
        for _, i in sorted(state.instances.items())
    ]


def _stream_rows(state: ClusterState) -> list[dict[str, Any]]:
    return [
        {
            "stream_id": s.stream_id,
            "server_id": s.server_id,
            "status": s.status.value,
            "migration": None
            if s.migration_state is None
            else f"{s.migration_state.from_server}->{s.migration_state.to_server}",
        }
        for _, s in sorted(state.streams.items())
    ]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "none"


def _print_state(state: ClusterState, summary: dict[str, Any]) -> None:
    typer.echo(
        f"state as of seq {summary['seq']} (epoch {summary['epoch']}, leader "
        f"{summary['leader_id']}, last event {summary['as_of']})"
    )
    typer.echo(f"instances: {_counts(summary['instances'])}; draining {summary['draining']}")
    typer.echo(
        f"streams: {_counts(summary['streams'])}; migrations {summary['migrations_in_flight']}"
        f"; capacity {summary['capacity']}, load {summary['load']}"
        f"; maintenance {'on' if summary['maintenance'] else 'off'}"
        f"; findings {summary['findings']}"
    )
    for row in _instance_rows(state):
        typer.echo(
            f"  instance {row['server_id']} ({row['incarnation']}) {row['status']}"
            f"{' draining' if row['draining'] else ''} streams {row['current_streams']} "
            f"load {row['load']}/{row['max_streams']}"
        )
    for row in _stream_rows(state):
        migration = f" migrating {row['migration']}" if row["migration"] else ""
        typer.echo(f"  stream {row['stream_id']} {row['status']} on {row['server_id']}{migration}")


@audit_app.command("state")
def audit_state(
    at: Annotated[
        str | None, typer.Option(help="ISO 8601 time (UTC if no zone): the state then.")
    ] = None,
    seq: Annotated[int | None, typer.Option(min=0, help="The state after event seq N.")] = None,
    offset: Annotated[
        int | None, typer.Option(min=0, help="The state before log offset N.")
    ] = None,
    as_json: AsJson = False,
    use_snapshot: UseSnapshot = True,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Fold the control log up to a time, a seq or an offset and print the state then."""
    if sum(x is not None for x in (at, seq, offset)) > 1:
        raise typer.BadParameter("give at most one of them", param_hint="--at / --seq / --offset")
    when = parse_time(at) if at is not None else None
    servers, topics = resolve_topics(bootstrap, topic_prefix)
    state: ClusterState = run(
        state_at(servers, topics, at=when, seq=seq, offset=offset, use_snapshot=use_snapshot)
    )
    summary = summarize(state)
    if as_json:
        doc = {"summary": summary, "instances": _instance_rows(state)}
        doc["streams"] = _stream_rows(state)
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print_state(state, summary)


# --- audit stream -------------------------------------------------------------------------


async def stream_chain(bootstrap: Brokers, topics: Topics, stream_id: str) -> StreamHistory:
    """Fold the whole log, collecting the steps of ``stream_id`` (see projections.fold.audit)."""
    history = StreamHistory(stream_id, ClusterState())
    async for events in read_events(bootstrap, topics.events):
        for event in events:
            history = follow_stream(history, event)
    return history


@audit_app.command("stream")
def audit_stream(
    stream_id: StreamId,
    as_json: AsJson = False,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """The chain of events that moved or changed STREAM_ID, oldest first (exit 1: none)."""
    servers, topics = resolve_topics(bootstrap, topic_prefix)
    history: StreamHistory = run(stream_chain(servers, topics, stream_id))
    steps = [step._asdict() | {"time": step.time.isoformat()} for step in history.steps]
    if as_json:
        typer.echo(json.dumps(steps, indent=2))
    elif not steps:
        typer.echo(f"no event concerns stream {stream_id}")
    for step in [] if as_json else history.steps:
        move = f"{step.server_before} -> {step.server_after}"
        typer.echo(
            f"seq {step.seq} {step.time.isoformat()} {step.type} [{move}, "
            f"{step.status_before} -> {step.status_after}] reason {step.reason or '-'} "
            f"cause {step.causationid or '-'}: {step.detail}"
            + ("" if step.applied else f" REFUSED ({step.finding})")
        )
    if not steps:
        raise typer.Exit(1)


# --- audit verify -------------------------------------------------------------------------


async def verify(bootstrap: Brokers, topics: Topics) -> dict[str, Any]:
    """Replay the whole log and check it (and the latest snapshot); a report dict whose
    ``ok`` is False when anything is wrong."""
    skipped: list[str] = []
    snapshot = await latest_snapshot(bootstrap, topics, skipped)
    check: dict[str, Any] | None = None
    head: ReplayResult | None = None
    if snapshot is not None:
        head = await replay(bootstrap, topics.events, until_offset=snapshot.log_offset)
        digest = state_digest(head.state)
        check = {
            "seq": snapshot.seq,
            "log_offset": snapshot.log_offset,
            "taken_at": snapshot.taken_at.isoformat(),
            "taken_by": snapshot.taken_by,
            "digest": snapshot.digest,
            "log_seq": head.state.seq,
            "log_digest": digest,
            "match": digest == snapshot.digest and head.state.seq == snapshot.seq,
        }
    result = await replay(
        bootstrap,
        topics.events,
        from_state=head.state if head else None,
        from_offset=head.offset if head else 0,
    )
    return _report(result, head, check, skipped)


def _report(
    result: ReplayResult,
    head: ReplayResult | None,
    check: dict[str, Any] | None,
    skipped: list[str],
) -> dict[str, Any]:
    state = result.state
    kinds = Counter(f.kind.value for f in state.findings)
    gaps = [f.detail for f in state.findings if f.kind is FindingKind.SEQ_GAP]
    rejected = result.rejected + (head.rejected if head else 0)
    ok = state.finding_count == 0 and rejected == 0 and not skipped
    ok = ok and (check is None or bool(check["match"]))
    return {
        "ok": ok,
        "seq": state.seq,
        "epoch": state.epoch,
        "offset": result.offset,
        "events": result.events + (head.events if head else 0),
        "dead_letters": rejected,
        "digest": state_digest(state),
        "finding_count": state.finding_count,
        "findings_by_kind": dict(sorted(kinds.items())),
        "seq_gaps": gaps,
        "findings": [
            {"seq": f.seq, "kind": f.kind.value, "type": f.event_type, "detail": f.detail}
            for f in state.findings
        ],
        "snapshot": check,
        "invalid_snapshots": skipped,
    }


def _print_report(report: dict[str, Any]) -> None:
    typer.echo(
        f"log: {report['events']} events to seq {report['seq']} (epoch {report['epoch']}), "
        f"offset {report['offset']}, {report['dead_letters']} dead letter(s)"
    )
    typer.echo(f"digest {report['digest']}")
    typer.echo(f"findings: {report['finding_count']} {report['findings_by_kind'] or ''}".rstrip())
    for f in report["findings"]:
        typer.echo(f"  seq {f['seq']} {f['kind']} {f['type']}: {f['detail']}")
    snap = report["snapshot"]
    if snap is None:
        typer.echo("snapshot: none")
    else:
        verdict = "matches the log" if snap["match"] else "DIFFERS from the log"
        typer.echo(
            f"snapshot at seq {snap['seq']} (offset {snap['log_offset']}, "
            f"{snap['taken_at']}): {verdict}"
        )
    for line in report["invalid_snapshots"]:
        typer.echo(f"invalid snapshot: {line}")
    typer.echo("OK" if report["ok"] else "FINDINGS")


@audit_app.command("verify")
def audit_verify(
    as_json: AsJson = False, bootstrap: Bootstrap = None, topic_prefix: Prefix = None
) -> None:
    """Replay the whole log: findings, seq gaps, dead letters, digest, and the latest
    snapshot against the log at its offset. Exit 1 on any finding, 3 if Kafka is down."""
    servers, topics = resolve_topics(bootstrap, topic_prefix)
    report: dict[str, Any] = run(verify(servers, topics))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print_report(report)
    if not report["ok"]:
        raise typer.Exit(1)


__all__ = [
    "audit_app",
    "audit_state",
    "audit_stream",
    "audit_verify",
    "parse_time",
    "resolve_topics",
    "run",
    "stream_chain",
    "verify",
]
