"""Taking the control log over: what a projector does when the group hands it partition 0.

Several ``streamplane projector`` processes may run in one Faust group; the one holding the
control log's only partition folds it and writes the ``instances`` and ``assignments`` tables
and ``<prefix>.assignments`` (Faust's assignor gives the tables' changelog partition 0 to the
same member: same partition count, same subscribers). The others are standbys: they write
nothing of that, and their fold state is only as fresh as their last catch-up.

A member that is handed the partition (at its first start or when the holder died or left)
does, before any record is folded live (signal ``on_rebalance_complete``):

1. :func:`catch_up`: fold the log from where its own state stands to the end it finds now.
   The previous holder cannot have folded past that end, so nothing it wrote is newer;
2. read what ``<prefix>.assignments`` shows (:func:`published_assignments`), and what the
   tables hold (recovered from their changelogs, or from RocksDB and the changelogs' tails);
3. :func:`plan`: publish and write only what differs from the caught-up state, with
   ``as_of_seq`` = the state's seq (so a key's ``as_of_seq`` never goes back) and reason
   ``projector_resync``.

The member then pauses the partition in Faust's consumer and its own reader
(:mod:`projections.projector.reader`) writes the writes above first, through the producer it
then writes everything else with (so none lands after a later one), and folds the log live
from that end: no gap, and nothing stale.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from events.topics import Topics
from projections.fold.assignments import Update, resync_assignments, resync_instances
from projections.fold.state import ClusterState
from projections.io.dlq import DeadLetterWriter
from projections.io.latest import read_latest
from projections.io.replay import ReplayResult, ReplaySettings, replay
from projections.projector.settings import ProjectorSettings

log = logging.getLogger(__name__)

JsonMap = Mapping[str, Mapping[str, Any]]


class Plan(NamedTuple):
    """What a new holder writes: records to publish and table writes (each may be empty)."""

    published: list[Update]
    instances: list[Update]
    assignments: list[Update]


def plan(state: ClusterState, *, topic: JsonMap, instances: JsonMap, assignments: JsonMap) -> Plan:
    """The writes that make the topic and both tables equal ``state`` (pure)."""
    return Plan(
        resync_assignments(state, topic),
        resync_instances(state, instances),
        resync_assignments(state, assignments),
    )


async def catch_up(
    settings: ProjectorSettings, state: ClusterState, offset: int, *, dead_letters: bool = False
) -> ReplayResult:
    """Fold the control log from ``offset`` onto ``state`` up to its current end. With
    ``dead_letters`` (a takeover: this member now writes) an undecodable record goes to the
    DLQ as the live agent would send it; a standby only logs and counts it (the holder sends
    it)."""
    topics = Topics(settings.topic_prefix)
    cfg = ReplaySettings(kafka_timeout=settings.projector_kafka_timeout)
    if not dead_letters:
        return await replay(
            settings.kafka_access, topics.events, from_state=state, from_offset=offset, settings=cfg
        )
    timeout = settings.projector_kafka_timeout
    async with DeadLetterWriter(settings.kafka_access, topics.dlq, kafka_timeout=timeout) as dlq:
        return await replay(
            settings.kafka_access,
            topics.events,
            from_state=state,
            from_offset=offset,
            settings=cfg,
            dlq=dlq,
        )


async def published_assignments(settings: ProjectorSettings) -> dict[str, Any]:
    """stream_id -> the newest record ``<prefix>.assignments`` shows (tombstones left out).
    A record that is not a JSON object counts as absent: the resync writes it anew."""
    topic = Topics(settings.topic_prefix).assignments
    latest = await read_latest(
        settings.kafka_access, topic, kafka_timeout=settings.projector_kafka_timeout
    )
    out: dict[str, Any] = {}
    for key, record in latest.items():
        if record.value is None:
            continue
        try:
            value = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            log.warning("%s: record of %r is not JSON; it is republished", topic, key)
            continue
        if isinstance(value, dict):
            out[key] = value
    return out


__all__ = ["Plan", "catch_up", "plan", "published_assignments"]
