"""Talking to a running control plane from outside: send a command and wait for its outcome,
read the current state (a fold of the control log), follow events.

Used by the CLI, the demo and the tests; any Kafka client in any language can do the same
(see docs/events.md).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors

from control_plane.errors import CommandRejectedError, CommandTimeoutError
from events import encode
from events.base import Command, ControlEvent
from events.codec import decode_event
from events.control import CommandCompleted, CommandRejected
from events.errors import EventError
from events.topics import Topics
from kafka_auth import Brokers
from projections.errors import InvalidSnapshotError, OffsetOutOfRangeError
from projections.fold.snapshots import restore_state
from projections.fold.state import ClusterState
from projections.io.kafka import kafka_error, make_consumer, make_producer, started
from projections.io.replay import ReplayResult, replay
from projections.io.snapshot_store import SnapshotStore

log = logging.getLogger(__name__)


def new_command_id() -> str:
    return uuid.uuid4().hex


def build_command(
    build: Callable[..., Command],
    *,
    source: str = "streamplane/cli",
    command_id: str | None = None,
    **fields: object,
) -> Command:
    """``build(**fields)`` with a new event id, the time now and ``command_id`` (default: a
    new one); a bad field raises pydantic's ``ValidationError`` before anything is sent."""
    return build(
        id=uuid.uuid4().hex,
        source=source,
        time=datetime.now(UTC),
        command_id=command_id or new_command_id(),
        **fields,
    )


async def post_command(
    bootstrap: Brokers, topics: Topics, command: Command, *, kafka_timeout: float = 30.0
) -> None:
    """Put ``command`` on the commands topic (acks=all) without waiting for its outcome:
    the orchestrator answers in the log with events whose ``causationid`` is its id."""
    producer = make_producer(bootstrap, linger_ms=0)
    async with started(producer, kafka_timeout=kafka_timeout, what="command sender"):
        try:
            async with asyncio.timeout(kafka_timeout):
                await producer.send_and_wait(
                    topics.commands, encode(command), key=command.command_id.encode()
                )
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            what = f"send {type(command).__name__} to {topics.commands}"
            raise kafka_error(exc, what) from exc


async def send_command(
    bootstrap: Brokers,
    topics: Topics,
    build: Callable[..., Command],
    *,
    wait_s: float = 30.0,
    source: str = "streamplane/cli",
    command_id: str | None = None,
    **fields: object,
) -> tuple[ControlEvent, list[ControlEvent]]:
    """Send ``build(**fields)`` and wait for its outcome.

    Returns (the ``CommandCompleted``, the events it caused). Raises
    :class:`CommandRejectedError` when refused and :class:`CommandTimeoutError` when no
    orchestrator answered within ``wait_s`` seconds. ``command_id`` (default: a new one)
    lets the caller name the command before it is answered.
    """
    command = build_command(build, source=source, command_id=command_id, **fields)
    command_id = command.command_id
    tp = TopicPartition(topics.events, 0)
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    async with started(consumer, what="event reader"):
        consumer.assign([tp])
        start = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        async with started(make_producer(bootstrap, linger_ms=0), what="command sender") as p:
            await p.send_and_wait(topics.commands, encode(command), key=command_id.encode())
        caused: list[ControlEvent] = []
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    batch = await consumer.getmany(tp, timeout_ms=500)
                    for record in batch.get(tp, []):
                        try:
                            event = decode_event(record.value)
                        except EventError:
                            continue
                        if event.causationid != command_id:
                            continue
                        if isinstance(event, CommandRejected):
                            raise CommandRejectedError(event.reason, event.detail)
                        if isinstance(event, CommandCompleted):
                            return event, caused
                        caused.append(event)
        except TimeoutError as exc:
            raise CommandTimeoutError(
                f"no answer to {command.type} within {wait_s:.0f}s: "  # type: ignore[attr-defined]
                "is an orchestrator running on this Kafka and topic prefix?"
            ) from exc


async def snapshot_start(
    bootstrap: Brokers,
    topics: Topics,
    *,
    until_offset: int | None = None,
    until_seq: int | None = None,
) -> tuple[ClusterState, int]:
    """Where to start folding: the latest valid snapshot's state and ``log_offset`` when it
    lies at or before ``until_offset``/``until_seq`` (if given), else an empty state at 0.
    A snapshot that cannot be rebuilt is logged and ignored (the log answers anyway)."""
    async with SnapshotStore(bootstrap, topics) as store:
        snapshot = await store.latest()
    if snapshot is None:
        return ClusterState(), 0
    if until_offset is not None and snapshot.log_offset > until_offset:
        return ClusterState(), 0
    if until_seq is not None and snapshot.seq > until_seq:
        return ClusterState(), 0
    try:
        return restore_state(snapshot), snapshot.log_offset
    except InvalidSnapshotError as exc:
        log.warning("not using the snapshot at seq %d: %s", snapshot.seq, exc)
        return ClusterState(), 0


async def read_state(bootstrap: Brokers, topics: Topics, **kwargs: object) -> ReplayResult:
    """The current state: the control log folded (``kwargs`` go to ``replay``).

    It starts from the latest valid snapshot (then folds the tail from its ``log_offset``)
    unless ``kwargs`` say where to start (``from_state``/``from_offset``) or stop by time;
    with ``until_offset``, only a snapshot at or before it is used. ``events``/``rejected``
    in the result then count the tail only. Without a usable snapshot, or when its offset is
    no longer in the log, it folds from offset 0."""
    fixed = {"from_state", "from_offset", "until_time"} & kwargs.keys()
    if not fixed:
        until = kwargs.get("until_offset")
        start, offset = await snapshot_start(
            bootstrap, topics, until_offset=until if isinstance(until, int) else None
        )
        if offset > 0:
            try:
                return await replay(
                    bootstrap,
                    topics.events,
                    from_state=start,
                    from_offset=offset,
                    **kwargs,  # type: ignore[arg-type]
                )
            except OffsetOutOfRangeError as exc:
                log.warning("snapshot offset not in the log (%s); folding from 0", exc)
    return await replay(bootstrap, topics.events, **kwargs)  # type: ignore[arg-type]
