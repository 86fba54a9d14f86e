"""``streamplane audit drift``: compare the projections with the log, and repair them.

The comparison itself is pure (:mod:`projections.fold.drift`); this module reads:

- the **PostgreSQL read model**: the tracking row, ``streams``, ``instances``, the ``cluster``
  row and migrations in flight, in one read-only repeatable-read transaction, then folds the
  log up to the tracking row's ``next_offset`` (from the latest snapshot when it lies before)
  and the tail after it (for the lag);
- the **``<prefix>.assignments`` topic** (``--assignments``): every partition from the
  beginning to the end seen now, then the log up to the records' highest ``as_of_seq`` and
  the tail after it.

``--repair``: the read model is **rebuilt from the log** (``ReadModelProjector.rebuild()``:
tables dropped, recreated and projected again; a projector running meanwhile resumes from the
reset tracking row). The assignments topic is a projection, not the log, so the correct
record is **republished** for each drifted key (reason ``drift_repair``, keyed like the
projector's records so it lands in the same partition and compaction keeps it). The control
log is never written. After a repair the check runs again.

Exit codes: 0 no drift (lag alone is fine), 1 drift found and not repaired, 3 Kafka or
PostgreSQL unreachable (:mod:`control_plane.tools.exits`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import asyncpg
import orjson
import typer
from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors

from control_plane.client import read_state, snapshot_start
from control_plane.tools.exits import reports_errors
from control_plane.tools.options import Bootstrap, Prefix
from events.topics import Topics
from kafka_auth import Brokers
from projections.errors import UnknownTopicError
from projections.fold import fold_until
from projections.fold.drift import (
    AssignmentsView,
    Drift,
    DriftReport,
    Projection,
    ReadModelRows,
    Tail,
    assignment_repairs,
    compare_assignments,
    compare_read_model,
    fold_tail,
    latest_assignments,
    missing_read_model,
)
from projections.fold.state import ClusterState
from projections.io.history import read_events
from projections.io.kafka import end_offsets, kafka_error, make_consumer, make_producer, started
from projections.io.postgres import ResilientDatabaseManager
from projections.io.read_store import ReadModelSettings
from projections.io.replay import ReplaySettings, replay
from projections.read_model import ReadModelProjector

EXIT_DRIFT = 1

# --- reading the read model -------------------------------------------------------------


async def read_model_rows(settings: ReadModelSettings) -> ReadModelRows | None:
    """The read model's rows in one snapshot; None when its tables or tracking row are
    missing. Raises a :class:`DatabaseError` when PostgreSQL fails."""
    name = settings.read_model_name

    async def query(conn: asyncpg.Connection) -> ReadModelRows | None:
        if await conn.fetchval("SELECT to_regclass('projection_tracking')") is None:
            return None
        tracking = await conn.fetchrow(
            "SELECT next_offset, last_seq FROM projection_tracking WHERE projection = $1", name
        )
        if tracking is None:
            return None
        cluster = await conn.fetchrow("SELECT * FROM cluster WHERE projection = $1", name)
        migrations = await conn.fetch(
            "SELECT stream_id, migration_id FROM migrations WHERE outcome = 'in_flight'"
        )
        return ReadModelRows(
            next_offset=int(tracking["next_offset"]),
            last_seq=int(tracking["last_seq"]),
            streams=[dict(r) for r in await conn.fetch("SELECT * FROM streams")],
            instances=[dict(r) for r in await conn.fetch("SELECT * FROM instances")],
            cluster=None if cluster is None else dict(cluster),
            in_flight={r["stream_id"]: r["migration_id"] for r in migrations},
        )

    db = ResilientDatabaseManager(
        settings.database_url,
        schema=settings.database_schema,
        settings=settings.database,
        application_name="streamplane-drift",
    )
    async with db:
        return await db.execute_with_retry(
            query, what="read the read model", isolation="repeatable_read", readonly=True
        )


async def check_read_model(settings: ReadModelSettings) -> DriftReport:
    """Compare the read model with the log folded to its tracking row."""
    bootstrap, topics = settings.kafka_access, Topics(settings.topic_prefix)
    rows = await read_model_rows(settings)
    end = (await end_offsets(bootstrap, topics.events, kafka_timeout=settings.kafka_timeout))[0]
    if rows is None:
        head = await read_state(bootstrap, topics)
        return missing_read_model(head_seq=head.state.seq, lag=end)
    if rows.next_offset > end:  # tracking beyond the log: another log, or a truncated one
        head = await read_state(bootstrap, topics)
        drift = Drift(
            Projection.READ_MODEL,
            "projection_tracking",
            "next_offset",
            {"at_most": end},
            {"next_offset": rows.next_offset},
            ("next_offset",),
            head.state.seq,
        )
        return DriftReport(Projection.READ_MODEL, rows.last_seq, head.state.seq, 0, 1, (drift,))
    at = await read_state(bootstrap, topics, until_offset=rows.next_offset)
    cfg = ReplaySettings(kafka_timeout=settings.kafka_timeout)
    head = await replay(
        bootstrap, topics.events, from_state=at.state, from_offset=at.offset, settings=cfg
    )
    return compare_read_model(at.state, rows, head_seq=head.state.seq, lag=head.offset - at.offset)


async def repair_read_model(settings: ReadModelSettings) -> int:
    """Rebuild the read model from the log; returns the events projected."""
    async with ReadModelProjector(settings=settings) as projector:
        return await projector.rebuild()


# --- reading the assignments topic ------------------------------------------------------


async def read_assignments(
    bootstrap: Brokers, topic: str, *, kafka_timeout: float
) -> AssignmentsView:
    """Every record of ``topic`` up to the end seen now, folded to the newest per key (an
    absent topic reads as empty: nothing was projected yet)."""
    try:
        ends = await end_offsets(bootstrap, topic, kafka_timeout=kafka_timeout)
    except UnknownTopicError:
        return AssignmentsView({}, 0)
    tps = {TopicPartition(topic, p): end for p, end in ends.items()}
    records: list[tuple[bytes | None, bytes | None]] = []
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    async with started(consumer, kafka_timeout=kafka_timeout, what=f"reader of {topic}"):
        consumer.assign(list(tps))
        pending = {tp for tp, end in tps.items() if end > 0}
        try:
            if pending:
                async with asyncio.timeout(kafka_timeout):
                    await consumer.seek_to_beginning(*pending)
            while pending:
                async with asyncio.timeout(kafka_timeout):
                    batch = await consumer.getmany(*pending, timeout_ms=500, max_records=20_000)
                    for tp, got in batch.items():
                        records.extend((r.key, r.value) for r in got if r.offset < tps[tp])
                    for tp in list(pending):
                        if await consumer.position(tp) >= tps[tp]:
                            pending.discard(tp)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"read {topic}") from exc
    return latest_assignments(records)


async def check_assignments(
    bootstrap: Brokers, topics: Topics, *, kafka_timeout: float
) -> tuple[DriftReport, ClusterState]:
    """Compare the assignments topic with the log folded to its as-of seq; returns the
    report and that state (what a repair republishes)."""
    view = await read_assignments(bootstrap, topics.assignments, kafka_timeout=kafka_timeout)
    at, offset = await snapshot_start(bootstrap, topics, until_seq=view.as_of_seq)
    tail: Tail | None = None
    async for events in read_events(
        bootstrap, topics.events, from_offset=offset, kafka_timeout=kafka_timeout
    ):
        if tail is None:
            at, folded = fold_until(at, events, seq=view.as_of_seq)
            if folded == len(events):
                continue
            tail, events = Tail(at), events[folded:]
        tail = fold_tail(tail, events)
    return compare_assignments(at, tail or Tail(at), view), at


async def repair_assignments(
    bootstrap: Brokers,
    topics: Topics,
    report: DriftReport,
    at: ClusterState,
    *,
    kafka_timeout: float,
) -> int:
    """Republish the correct record (or a tombstone) for each drifted key; returns how many.
    Keyed by stream id with the default partitioner, as the Faust projector publishes."""
    updates = assignment_repairs(at, report)
    producer = make_producer(bootstrap, linger_ms=0)
    async with started(producer, kafka_timeout=kafka_timeout, what="assignments repair"):
        try:
            async with asyncio.timeout(kafka_timeout):
                for update in updates:
                    value = None if update.value is None else orjson.dumps(update.value)
                    await producer.send_and_wait(topics.assignments, value, key=update.key.encode())
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"republish to {topics.assignments}") from exc
    return len(updates)


# --- the command ------------------------------------------------------------------------


async def run_drift(
    settings: ReadModelSettings, *, read_model: bool, assignments: bool, repair: bool
) -> dict[str, Any]:
    """Check (and with ``repair`` put right, then check again) the chosen projections;
    a JSON-able summary whose ``clean`` says whether drift remains."""
    bootstrap, topics = settings.kafka_access, Topics(settings.topic_prefix)
    timeout = settings.kafka_timeout
    out: dict[str, Any] = {"reports": [], "repairs": []}
    if read_model:
        report = await check_read_model(settings)
        if repair and not report.clean:
            events = await repair_read_model(settings)
            out["repairs"].append(
                {"projection": "read_model", "action": "rebuilt from the log", "events": events}
            )
            report = await check_read_model(settings)
        out["reports"].append(report.to_json())
    if assignments:
        report, at = await check_assignments(bootstrap, topics, kafka_timeout=timeout)
        if repair and not report.clean:
            n = await repair_assignments(bootstrap, topics, report, at, kafka_timeout=timeout)
            out["repairs"].append(
                {"projection": "assignments", "action": "republished records", "records": n}
            )
            report, _ = await check_assignments(bootstrap, topics, kafka_timeout=timeout)
        out["reports"].append(report.to_json())
    out["clean"] = all(r["clean"] for r in out["reports"])
    return out


def _print(summary: dict[str, Any]) -> None:
    for fix in summary["repairs"]:
        count = fix.get("events", fix.get("records"))
        typer.echo(f"repaired {fix['projection']}: {fix['action']} ({count})")
    for r in summary["reports"]:
        lag = f"lagging by {r['lag']}" if r["lag"] else "up to date"
        typer.echo(
            f"{r['projection']}: as of seq {r['as_of_seq']} (log head seq {r['head_seq']}, "
            f"{lag}); {r['checked']} key(s) checked, {len(r['drifts'])} drifted"
        )
        for d in r["drifts"]:
            what = ", ".join(d["fields"]) or ("missing" if d["found"] is None else "unexpected")
            typer.echo(
                f"  projection_drift {d['table']} {d['key']} [{what}]: "
                f"expected {json.dumps(d['expected'])} found {json.dumps(d['found'])}"
            )
    typer.echo("OK" if summary["clean"] else "DRIFT")


@reports_errors  # also mounted on an app of its own (tests/integration/test_drift_kafka.py)
def audit_drift(
    database_url: Annotated[
        str | None, typer.Option(help="Read model database (env STREAMPLANE_DATABASE_URL).")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Read model schema (env STREAMPLANE_DATABASE_SCHEMA).")
    ] = None,
    read_model: Annotated[
        bool, typer.Option("--read-model/--no-read-model", help="Check the read model.")
    ] = True,
    assignments: Annotated[
        bool, typer.Option("--assignments", help="Check the <prefix>.assignments topic.")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Rebuild the read model from the log; republish drifted assignment records.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Compare projections with the log at their own as-of seq (lag is not drift). Exit 0
    clean, 1 drift found (and not repaired), 3 Kafka or PostgreSQL unreachable."""
    overrides: dict[str, Any] = {
        "database_url": database_url,
        "database_schema": schema,
        "kafka_bootstrap": bootstrap,
        "topic_prefix": topic_prefix,
    }
    settings = ReadModelSettings(**{k: v for k, v in overrides.items() if v is not None})
    run = run_drift(settings, read_model=read_model, assignments=assignments, repair=repair)
    summary = asyncio.run(run)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print(summary)
    if not summary["clean"]:
        raise typer.Exit(EXIT_DRIFT)


__all__ = [
    "audit_drift",
    "check_assignments",
    "check_read_model",
    "read_assignments",
    "read_model_rows",
    "repair_assignments",
    "repair_read_model",
    "run_drift",
]
