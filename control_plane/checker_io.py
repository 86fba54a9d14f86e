"""The consistency checker's reads: the views it compares ``fold(control log)`` with.

The comparison is pure (:mod:`control_plane.decide.checker`); these read, each with every
Kafka call bounded by ``kafka_timeout`` and read_committed:

- :func:`read_latest` (:mod:`projections.io.latest`): the newest record per key of a keyed
  topic, from given offsets to the end seen when it starts; :func:`read_desired`
  (``<prefix>.desired`` from its beginning, decoded) and :func:`read_heartbeats`
  (``<prefix>.heartbeats`` since a time, the newest per server with its record timestamp)
  build on it;
- :func:`read_acknowledged`: the log findings a repair already acknowledged (the ids its
  ``ConsistencyDivergenceRepaired`` events name), read from the oldest finding the state
  keeps onwards: nothing is read when the log has no findings.

Undecodable records are counted and skipped here: a checker reports, it does not stop at the
first bad record (the replay dead-letters them and the report says how many).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from control_plane.decide.checker import LastHeartbeat, acknowledged_id
from events import control as ev
from events.codec import decode_desired, decode_heartbeat
from events.errors import EventError
from events.heartbeat import DesiredSet
from events.topics import Topics
from kafka_auth import Brokers
from projections.fold.state import ClusterState
from projections.io.history import read_events
from projections.io.latest import Record, read_latest

log = logging.getLogger("streamplane.check")


async def read_desired(
    bootstrap: Brokers, topics: Topics, *, kafka_timeout: float
) -> dict[str, DesiredSet]:
    """server_id -> its newest desired set (tombstones and undecodable records left out)."""
    out: dict[str, DesiredSet] = {}
    bad = 0
    for key, record in (
        await read_latest(bootstrap, topics.desired, kafka_timeout=kafka_timeout)
    ).items():
        if record.value is None:
            continue
        try:
            out[key] = decode_desired(record.value)
        except EventError:
            bad += 1
    if bad:
        log.warning("%s: %d undecodable desired record(s) left out", topics.desired, bad)
    return out


async def read_heartbeats(
    bootstrap: Brokers, topics: Topics, *, since: datetime, kafka_timeout: float
) -> dict[str, LastHeartbeat]:
    """server_id -> its newest heartbeat sent since ``since``, with the record's timestamp
    as when it was heard (heartbeats are keyed by server_id)."""
    out: dict[str, LastHeartbeat] = {}
    records = await read_latest(
        bootstrap, topics.heartbeats, since=since, kafka_timeout=kafka_timeout
    )
    for key, record in records.items():
        if record.value is None:
            continue
        try:
            hb = decode_heartbeat(record.value)
        except EventError:
            continue
        heard = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
        out[hb.server_id or key] = LastHeartbeat(hb, heard)
    return out


async def read_acknowledged(
    bootstrap: Brokers, topics: Topics, state: ClusterState, *, kafka_timeout: float
) -> frozenset[str]:
    """Ids of the findings in ``state`` that a repair acknowledged. An event's offset is at
    least its seq - 1 (seqs start at 1 and never skip an offset backwards), so reading from
    the oldest kept finding's seq - 1 sees every acknowledgement written after it."""
    if not state.findings:
        return frozenset()
    start = max(0, min(min(f.seq for f in state.findings), state.seq) - 1)
    wanted = {f.event_id for f in state.findings}
    found: set[str] = set()
    async for events in read_events(
        bootstrap, topics.events, from_offset=start, kafka_timeout=kafka_timeout
    ):
        for e in events:
            if isinstance(e, ev.ConsistencyDivergenceRepaired):
                acked = acknowledged_id(e.action)
                if acked in wanted:
                    found.add(acked)
    return frozenset(found)


__all__ = ["Record", "read_acknowledged", "read_desired", "read_heartbeats", "read_latest"]
