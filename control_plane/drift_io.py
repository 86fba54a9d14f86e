"""Reading the projections to compare them with the log (``audit drift``, ``check``).

Moved here from the CLI so that every process may read them (the API's check, the
orchestrator's periodic one): the comparison itself is pure (:mod:`projections.fold.drift`);
these read the PostgreSQL read model in one read-only repeatable-read transaction and the
``<prefix>.assignments`` topic to the end seen now, and fold the log to where each stands.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson

from control_plane.client import read_state, snapshot_start
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
    compare_assignments,
    compare_instances,
    compare_read_model,
    fold_tail,
    instance_values_after,
    latest_assignments,
    missing_read_model,
)
from projections.fold.state import ClusterState
from projections.io.history import read_events
from projections.io.kafka import end_offsets
from projections.io.postgres import ResilientDatabaseManager
from projections.io.read_store import ReadModelSettings
from projections.io.records import read_all
from projections.io.replay import ReplaySettings, replay

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


# --- reading the assignments topic ------------------------------------------------------


async def read_assignments(
    bootstrap: Brokers, topic: str, *, kafka_timeout: float
) -> AssignmentsView:
    """Every record of ``topic`` up to the end seen now, folded to the newest per key (an
    absent topic reads as empty: nothing was projected yet)."""
    try:
        records = await _read_records(bootstrap, topic, kafka_timeout=kafka_timeout)
    except UnknownTopicError:
        return AssignmentsView({}, 0)
    return latest_assignments(records)


async def read_faust_table(
    bootstrap: Brokers, topic: str, *, kafka_timeout: float
) -> AssignmentsView | None:
    """The Faust projector's ``assignments`` table, from its changelog ``topic`` (keys are
    JSON strings there), folded like the assignments topic; None when the topic does not
    exist (no projector ever ran: nothing to compare)."""
    try:
        records = await _read_records(bootstrap, topic, kafka_timeout=kafka_timeout)
    except UnknownTopicError:
        return None
    return latest_assignments((_json_key(k), v) for k, v in records)


def _json_key(key: bytes | None) -> bytes | None:
    if key is None:
        return None
    try:
        name = orjson.loads(key)
    except orjson.JSONDecodeError:
        return key  # kept as it is: it shows up as a drifted key
    return name.encode() if isinstance(name, str) else key


async def _read_records(
    bootstrap: Brokers, topic: str, *, kafka_timeout: float
) -> list[tuple[bytes | None, bytes | None]]:
    """``(key, value)`` of every record of ``topic`` up to the end seen now, in offset order
    per partition. Raises :class:`UnknownTopicError` when the topic does not exist."""
    records = await read_all(bootstrap, topic, kafka_timeout=kafka_timeout)
    return [(r.key, r.value) for r in records]


async def check_assignments(
    bootstrap: Brokers,
    topics: Topics,
    *,
    kafka_timeout: float,
    view: AssignmentsView | None = None,
    projection: Projection = Projection.ASSIGNMENTS,
) -> tuple[DriftReport, ClusterState]:
    """Compare the assignments topic (or ``view``, e.g. the Faust table, as ``projection``)
    with the log folded to its as-of seq; returns the report and that state (what a repair
    republishes)."""
    if view is None:
        view = await read_assignments(bootstrap, topics.assignments, kafka_timeout=kafka_timeout)
    at, tail = await fold_at(bootstrap, topics, view.as_of_seq, kafka_timeout=kafka_timeout)
    return compare_assignments(at, tail, view, projection), at


async def fold_at(
    bootstrap: Brokers, topics: Topics, seq: int, *, kafka_timeout: float
) -> tuple[ClusterState, Tail]:
    """The log folded to ``seq`` (from the newest snapshot before it), and the rest of the
    log folded onto that (the tail a lagging projection is compared with)."""
    at, offset = await snapshot_start(bootstrap, topics, until_seq=seq)
    tail: Tail | None = None
    async for events in read_events(
        bootstrap, topics.events, from_offset=offset, kafka_timeout=kafka_timeout
    ):
        if tail is None:
            at, folded = fold_until(at, events, seq=seq)
            if folded == len(events):
                continue
            tail, events = Tail(at), events[folded:]
        tail = fold_tail(tail, events)
    return at, tail or Tail(at)


async def check_instances_table(
    bootstrap: Brokers, topics: Topics, view: AssignmentsView, *, kafka_timeout: float
) -> DriftReport:
    """The Faust ``instances`` table (``view``) against the log folded to just before its
    as-of seq and every value an instance took since (:func:`compare_instances`)."""
    until = max(0, view.as_of_seq - 1)
    before, offset = await snapshot_start(bootstrap, topics, until_seq=until)
    seen: dict[str, list[Any]] = {}
    state: ClusterState | None = None
    async for events in read_events(
        bootstrap, topics.events, from_offset=offset, kafka_timeout=kafka_timeout
    ):
        if state is None:
            before, folded = fold_until(before, events, seq=until)
            if folded == len(events):
                continue
            state, events = before, events[folded:]
        state = instance_values_after(state, events, seen)
    head = (state or before).seq
    return compare_instances(before, seen, view, head_seq=head)


__all__ = [
    "check_assignments",
    "check_instances_table",
    "fold_at",
    "check_read_model",
    "read_assignments",
    "read_faust_table",
    "read_model_rows",
]
