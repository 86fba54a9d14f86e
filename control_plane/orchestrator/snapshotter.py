"""When the orchestrator snapshots its state, and how a standby starts from a snapshot.

The policy is pure (:func:`snapshot_due`): snapshot every ``every_events`` events, or every
``interval`` if any event arrived since the last one. :class:`Snapshotter` is the
orchestrator's hook:

- ``after_commit(state, log_offset, now)``: the leader calls it after each successful
  control transaction; when due, a background task encodes the state (in a thread: a big
  state takes a second or two to serialise) and writes it with the store's own idempotent
  producer, never inside the control transaction (a snapshot is derived data). At most one
  write is in flight; a failed write is logged and retried after ``interval``.
- ``load(consumer, tp)``: on start and on step-down, the newest valid snapshot and the offset
  to resume the log from; anything wrong with it (bad digest, unknown format, a state this
  build cannot rebuild, an offset outside the log, Kafka not answering) is logged and the
  whole log is replayed instead.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors

from projections.errors import KafkaIOError
from projections.fold.canonical import JsonMemo
from projections.fold.snapshots import (
    InvalidSnapshotError,
    Snapshot,
    make_snapshot,
    restore_state,
)
from projections.fold.state import ClusterState
from projections.io.snapshot_store import SnapshotStore

log = logging.getLogger("streamplane.snapshotter")


class SnapshotPolicy(NamedTuple):
    """Snapshot every ``every_events`` events, or every ``interval`` when events arrived."""

    every_events: int = 10_000
    interval: timedelta = timedelta(minutes=5)


class SnapshotMark(NamedTuple):
    """The ``seq`` the last snapshot covered (or the state started from) and when."""

    seq: int
    at: datetime


def snapshot_due(policy: SnapshotPolicy, last: SnapshotMark, *, seq: int, now: datetime) -> bool:
    """Whether the state at ``seq`` should be snapshotted ``now`` (pure)."""
    if seq <= last.seq:
        return False  # nothing new since the last snapshot
    return seq - last.seq >= policy.every_events or now - last.at >= policy.interval


class StartPoint(NamedTuple):
    """Where a standby starts: ``state`` and the log offset to read next (None: the
    beginning of the log), and the snapshot used, if any."""

    state: ClusterState
    offset: int | None
    snapshot: Snapshot | None


def start_point(snapshot: Snapshot | None, *, begin: int, end: int) -> StartPoint:
    """Check ``snapshot`` against the log's ``[begin, end]`` and rebuild its state; on any
    problem, log it and start from scratch (pure but CPU-heavy: run it in a thread)."""
    scratch = StartPoint(ClusterState(), None, None)
    if snapshot is None:
        return scratch
    if not begin <= snapshot.log_offset <= end:
        log.warning(
            "ignoring snapshot at seq %d: its log offset %d is outside the log [%d, %d]",
            snapshot.seq,
            snapshot.log_offset,
            begin,
            end,
        )
        return scratch
    try:
        state = restore_state(snapshot)
    except InvalidSnapshotError as exc:
        log.warning("ignoring snapshot: %s", exc)
        return scratch
    return StartPoint(state, snapshot.log_offset, snapshot)


class Snapshotter:
    """The orchestrator's snapshot hook (see the module docstring)."""

    def __init__(
        self,
        store: SnapshotStore,
        policy: SnapshotPolicy,
        *,
        taken_by: str,
        now: datetime,
        load_timeout: float = 60.0,
    ) -> None:
        self.store = store
        self.policy = policy
        self.taken_by = taken_by
        self.load_timeout = load_timeout
        self.mark = SnapshotMark(0, now)
        self.written = 0  # snapshots written by this process (for logs and tests)
        self.failed = 0  # snapshots this process failed to write
        #: after a failed write, no snapshot is started before this time
        self._hold_until: datetime | None = None
        self.loaded: Snapshot | None = None  # the snapshot the last load() started from
        self._task: asyncio.Task[None] | None = None
        #: the last snapshot's records in canonical form: the next one converts only changes
        self._memo = JsonMemo()

    async def load(self, consumer: Any, tp: TopicPartition, *, now: datetime) -> StartPoint:
        """The start point for following ``tp`` with ``consumer`` (see :func:`start_point`);
        never raises for a snapshot problem. Resets the policy's mark to the start point."""
        snapshot: Snapshot | None = None
        try:
            async with asyncio.timeout(self.load_timeout):
                begin = int((await consumer.beginning_offsets([tp]))[tp])
                end = int((await consumer.end_offsets([tp]))[tp])
                snapshot = await self.store.latest()
        except (TimeoutError, KafkaIOError, kafka_errors.KafkaError) as exc:
            log.warning("no snapshot loaded (%s): replaying the log from its beginning", exc)
            begin = end = 0
        point = await asyncio.to_thread(start_point, snapshot, begin=begin, end=end)
        if point.snapshot is not None:
            log.info(
                "starting from the snapshot at seq %d (log offset %d)",
                point.snapshot.seq,
                point.offset,
            )
        self.mark = SnapshotMark(point.state.seq, now)
        self.loaded = point.snapshot
        return point

    def after_commit(self, state: ClusterState, log_offset: int, now: datetime) -> bool:
        """Start writing a snapshot of ``state`` (= fold(log[:log_offset])) if due and no
        write is in flight; returns whether one was started."""
        if self._task is not None and not self._task.done():
            return False
        if self._hold_until is not None and now < self._hold_until:
            return False
        if not snapshot_due(self.policy, self.mark, seq=state.seq, now=now):
            return False
        previous, self.mark = self.mark, SnapshotMark(state.seq, now)
        self._task = asyncio.create_task(
            self._write(state, log_offset, now, previous), name="snapshot-writer"
        )
        return True

    async def _write(
        self, state: ClusterState, log_offset: int, now: datetime, previous: SnapshotMark
    ) -> None:
        try:
            snapshot = await asyncio.to_thread(
                make_snapshot,
                state,
                log_offset=log_offset,
                taken_at=now,
                taken_by=self.taken_by,
                memo=self._memo,
            )
            offset = await self.store.write(snapshot)
        except (KafkaIOError, InvalidSnapshotError) as exc:
            # derived data: the log is intact; try again after another interval, not at the
            # next commit (a snapshot refused every time, e.g. by an ACL, cost a conversion
            # of the whole state per cycle)
            self.mark = SnapshotMark(previous.seq, now)
            self._hold_until = now + self.policy.interval
            self.failed += 1
            log.warning(
                "snapshot at seq %d not written: %s; trying again in %.0fs",
                state.seq,
                exc,
                self.policy.interval.total_seconds(),
            )
            return
        self._hold_until = None
        self.written += 1
        log.info(
            "snapshot at seq %d (log offset %d) written at %d",
            state.seq,
            log_offset,
            offset,
            extra={"seq": state.seq, "epoch": state.epoch},
        )

    async def wait(self) -> None:
        """Wait for the write in flight, if any (tests, orderly shutdown)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Cancel a write in flight (shutdown must not wait for a big snapshot)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # never raises the task's error; ours propagates
