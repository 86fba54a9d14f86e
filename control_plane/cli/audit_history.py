"""``streamplane audit instance`` and ``audit churn``: an instance's story, and how much the
streams moved and stood still (read-only, over the control log).

- ``audit instance ID [--json]``: every event that touched the instance (time, reason,
  causation, epoch, what it gained and lost) and the streams it held over time.
- ``audit churn --since T [--until T] [--json]``: per stream, seconds without a running
  owner and moves; for the window, streams moved and why (``projections.fold.churn``).

Mounted on ``streamplane audit`` by :mod:`control_plane.cli.main`.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from control_plane.cli.audit import parse_time, resolve_topics, run
from control_plane.tools.exits import FAILED, Failure
from control_plane.tools.options import AsJson, Bootstrap, Prefix, ServerId
from events.topics import Topics
from kafka_auth import Brokers
from projections.fold.audit_instance import InstanceHistory, follow_instance, intervals
from projections.fold.churn import ChurnCounter, ChurnReport
from projections.fold.state import ClusterState
from projections.io.history import read_events

#: a progress line on stderr every this many seconds of a long replay
PROGRESS_EVERY_S = 2.0

Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Progress lines on stderr during the replay (default: when stderr is a terminal).",
    ),
]


class Ticker:
    """Says how far a replay has come, on stderr, at most every ``PROGRESS_EVERY_S``."""

    def __init__(self, enabled: bool | None, what: str, *, unit: str = "events read") -> None:
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.what = what
        self.unit = unit
        self.count = 0
        self._next = time.monotonic() + PROGRESS_EVERY_S

    def tick(self, n: int, seq: int, at: datetime | None) -> None:
        self.count += n
        if self.enabled and time.monotonic() >= self._next:
            self._next = time.monotonic() + PROGRESS_EVERY_S
            when = at.isoformat() if at else "-"
            typer.echo(f"{self.what}: {self.count} {self.unit} (seq {seq}, {when})", err=True)


# --- audit instance -----------------------------------------------------------------------


async def instance_chain(
    bootstrap: Brokers, topics: Topics, server_id: str, ticker: Ticker | None = None
) -> InstanceHistory:
    """Fold the whole log, following ``server_id`` (see projections.fold.audit_instance)."""
    history = InstanceHistory(server_id, ClusterState())
    reader = read_events(bootstrap, topics.events)
    async with aclosing(reader):
        async for events in reader:
            for event in events:
                history = follow_instance(history, event)
            if ticker is not None:
                ticker.tick(len(events), history.state.seq, history.state.last_event_time)
    return history


def instance_doc(history: InstanceHistory) -> dict[str, Any]:
    """The ``--json`` form: the steps and the held intervals."""
    steps = [
        s._asdict() | {"time": s.time.isoformat(), "gained": list(s.gained), "lost": list(s.lost)}
        for s in history.steps
    ]
    held = [
        h._asdict()
        | {"since": h.since.isoformat(), "until": h.until.isoformat() if h.until else None}
        for h in intervals(history)
    ]
    inst = history.state.instances.get(history.server_id)
    now = None if inst is None else {"status": inst.status.value, "draining": inst.draining}
    return {"server_id": history.server_id, "now": now, "steps": steps, "held": held}


def _print_instance(history: InstanceHistory) -> None:
    for s in history.steps:
        change = "".join(
            [
                f" +{','.join(s.gained)}" if s.gained else "",
                f" -{','.join(s.lost)}" if s.lost else "",
            ]
        )
        typer.echo(
            f"seq {s.seq} epoch {s.epoch} {s.time.isoformat()} {s.type} "
            f"[{s.status_before or '-'} -> {s.status_after or '-'}, holds {s.held_before} -> "
            f"{s.held_after}{change}] reason {s.reason or '-'} cause {s.causationid or '-'}: "
            f"{s.detail}" + ("" if s.applied else f" REFUSED ({s.finding})")
        )
    typer.echo("held:")
    for h in intervals(history):
        end = f"seq {h.until_seq} {h.until.isoformat()} ({h.ended_by or '-'})" if h.until else "now"
        typer.echo(f"  {h.stream_id}: seq {h.since_seq} {h.since.isoformat()} -> {end}")


def audit_instance(
    server_id: ServerId,
    as_json: AsJson = False,
    progress: Progress = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Every event that touched SERVER_ID and the streams it held over time (exit 1: the
    log never mentions it)."""
    servers, topics = resolve_topics(bootstrap, topic_prefix)
    ticker = Ticker(progress, f"audit instance {server_id}")
    history: InstanceHistory = run(instance_chain(servers, topics, server_id, ticker))
    if not history.steps:
        line = Failure(FAILED, "server_id", f"no event in the log concerns instance {server_id!r}")
        typer.echo(line.line, err=True)
        raise typer.Exit(FAILED)
    if as_json:
        typer.echo(json.dumps(instance_doc(history), indent=2))
    else:
        _print_instance(history)


# --- audit churn --------------------------------------------------------------------------


async def count_churn(
    bootstrap: Brokers, topics: Topics, counter: ChurnCounter, ticker: Ticker | None = None
) -> ChurnReport:
    """Feed the log to ``counter`` up to its ``until``, then close the window."""
    reader = read_events(bootstrap, topics.events)
    async with aclosing(reader):
        async for events in reader:
            if not all(map(counter.feed, events)):
                break
            if ticker is not None:
                ticker.tick(len(events), counter.state.seq, counter.state.last_event_time)
    return counter.report()


def _print_churn(report: ChurnReport, top: int) -> None:
    doc = report.as_dict(per_stream=False)
    typer.echo(
        f"window {doc['since']} -> {doc['until']} ({doc['window_s']:.1f} s, {doc['events']} events)"
    )
    reasons = ", ".join(f"{k} {v}" for k, v in doc["moves_by_reason"].items()) or "none"
    typer.echo(f"moves: {doc['moves']} ({doc['streams_moved']} streams) by reason: {reasons}")
    typer.echo(
        f"unowned: {doc['unowned_stream_s']:.3f} stream-seconds over {doc['streams_down']} "
        f"stream(s); longest outage {doc['longest_outage_s']:.3f} s"
    )
    worst = sorted(report.streams.items(), key=lambda kv: (-kv[1].down_s, -kv[1].moves, kv[0]))
    for sid, s in [kv for kv in worst if kv[1].down_s or kv[1].moves][:top]:
        typer.echo(f"  {sid}: down {s.down_s:.3f} s in {s.outages} outage(s), {s.moves} move(s)")


def audit_churn(
    since: Annotated[str, typer.Option(help="Window start, ISO 8601 (UTC if no zone).")],
    until: Annotated[str | None, typer.Option(help="Window end, ISO 8601 (default: now).")] = None,
    top: Annotated[int, typer.Option(min=0, help="Streams listed (worst first).")] = 20,
    as_json: AsJson = False,
    progress: Progress = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Churn and downtime in a window: per stream, seconds without a running owner and
    moves; streams moved and why."""
    start = parse_time(since, option="--since")
    end = parse_time(until, option="--until") if until is not None else datetime.now(UTC)
    if end < start:
        raise typer.BadParameter(
            f"{until or end.isoformat()} is before --since", param_hint="--until"
        )
    servers, topics = resolve_topics(bootstrap, topic_prefix)
    counter = ChurnCounter(since=start, until=end)
    report: ChurnReport = run(
        count_churn(servers, topics, counter, Ticker(progress, "audit churn"))
    )
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        _print_churn(report, top)


__all__ = ["Ticker", "audit_churn", "audit_instance", "count_churn", "instance_chain"]
