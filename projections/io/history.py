"""Reading history from the control log: batches of decoded events, the state at a moment.

Used by ``streamplane audit`` and ``streamplane audit drift``; read-only (nothing here writes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors

from events.base import ControlEvent
from events.codec import decode_event
from events.errors import EventError
from events.topics import Topics
from kafka_auth import Brokers
from projections.fold import fold_until
from projections.fold.snapshots import InvalidSnapshotError, Snapshot, restore_state
from projections.fold.state import ClusterState
from projections.io.kafka import DEFAULT_TIMEOUT, check_topic, kafka_error, make_consumer, started
from projections.io.replay import replay
from projections.io.snapshot_store import SnapshotStore

log = logging.getLogger("streamplane.audit")


async def read_events(
    bootstrap: Brokers, topic: str, *, from_offset: int = 0, kafka_timeout: float = DEFAULT_TIMEOUT
) -> AsyncGenerator[list[ControlEvent], None]:
    """Batches of decoded control events from ``from_offset`` to the end captured at the
    start (read_committed); undecodable records are skipped (``replay`` counts them)."""
    tp = TopicPartition(topic, 0)
    consumer = make_consumer(bootstrap, auto_offset_reset="none")
    async with started(consumer, kafka_timeout=kafka_timeout, what=f"audit reader of {topic}"):
        try:
            async with asyncio.timeout(kafka_timeout):
                await check_topic(consumer, topic)
                consumer.assign([tp])
                end = int((await consumer.end_offsets([tp]))[tp])
            consumer.seek(tp, from_offset)
            position = from_offset
            while position < end:
                async with asyncio.timeout(kafka_timeout):
                    batch = await consumer.getmany(tp, timeout_ms=500, max_records=20_000)
                    position = await consumer.position(tp)
                events = []
                for record in batch.get(tp, []):
                    if record.offset >= end or record.value is None:
                        continue
                    try:
                        events.append(decode_event(record.value))
                    except EventError:
                        continue
                yield events
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"read {topic}") from exc


async def latest_snapshot(
    bootstrap: Brokers, topics: Topics, skipped: list[str] | None = None
) -> Snapshot | None:
    async with SnapshotStore(bootstrap, topics) as store:
        return await store.latest(skipped=skipped)


async def state_at(
    bootstrap: Brokers,
    topics: Topics,
    *,
    at: datetime | None = None,
    seq: int | None = None,
    offset: int | None = None,
    use_snapshot: bool = True,
) -> ClusterState:
    """The state after the last event not later than ``at`` / once ``seq`` is reached /
    before log offset ``offset`` (at most one; none: the whole log). Starts from the latest
    snapshot when it lies before that point."""
    start, from_offset = ClusterState(), 0
    snapshot = await latest_snapshot(bootstrap, topics) if use_snapshot else None
    if snapshot is not None and _covers(snapshot, at=at, seq=seq, offset=offset):
        try:
            start, from_offset = restore_state(snapshot), snapshot.log_offset
        except InvalidSnapshotError as exc:
            log.warning("not using the snapshot: %s", exc)  # the full replay still answers
    if seq is None:
        result = await replay(
            bootstrap,
            topics.events,
            from_state=start,
            from_offset=from_offset,
            until_time=at,
            until_offset=offset,
        )
        return result.state
    state = start
    reader = read_events(bootstrap, topics.events, from_offset=from_offset)
    async with aclosing(reader):
        async for events in reader:
            state, folded = fold_until(state, events, seq=seq)
            if folded < len(events):
                return state
    return state


def _covers(
    snapshot: Snapshot, *, at: datetime | None, seq: int | None, offset: int | None
) -> bool:
    if seq is not None:
        return snapshot.seq <= seq
    if offset is not None:
        return snapshot.log_offset <= offset
    if at is not None:
        when = snapshot.state.get("last_event_time")
        return when is not None and datetime.fromisoformat(when) <= at
    return True
