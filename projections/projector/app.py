"""The Faust projector (``streamplane projector``): tables ``instances``, ``assignments`` and
``liveness``, and the analytics topic ``<prefix>.assignments``.

Two agents:

- **control log** (``<prefix>.events``, one partition, read_committed): Faust's group says
  which member holds it; the holder reads it with a consumer of its own
  (:mod:`projections.projector.reader`, not Faust's stream). Each event is folded with
  :func:`projections.fold.apply_tracked`; the instances and streams it changed (known from its
  writes) go to the ``instances`` and ``assignments`` tables, and one record per changed
  stream to ``<prefix>.assignments`` (a tombstone when the stream was deregistered). Nothing
  else writes those tables: they are materialisations of the fold.
- **heartbeats** (``<prefix>.heartbeats``, keyed by ``server_id``): the ``liveness`` table keeps
  each server's last heartbeat time, incarnation, reported stream counts and metrics.

A record that does not decode goes to ``<prefix>.dlq`` and the projector goes on.

**Where the fold state comes from.** Faust's offsets and changelogs cannot rebuild a
``ClusterState``: on start the process (:mod:`projections.projector.run`) replays the log with
:func:`projections.io.replay.replay`. Of several projectors in one group, only the member
holding the control log's partition writes the two tables and the topic; when the group hands
it the partition, it catches up to the log's end and writes only what differs
(:mod:`projections.projector.takeover`), then its reader folds the rest live from that end
(:mod:`projections.projector.reader`, writing through :mod:`projections.projector.outputs`).
A standby catches its fold up every ``projector_standby_catch_up`` seconds.

**No exactly_once.** Faust runs at-least-once; correctness comes from idempotence instead: the
fold ignores an exact duplicate ``seq``, table writes are keyed upserts of values derived from
the state, and assignment records are keyed, compacted and carry ``as_of_seq``.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import TP
from prometheus_client import CollectorRegistry

from events.codec import decode_event, decode_heartbeat
from events.errors import EventError, MalformedMessageError
from events.topics import Topics
from projections.errors import KafkaIOError
from projections.fold import apply_tracked
from projections.fold.assignments import (
    assignment_updates,
    instance_updates,
    liveness_supersedes,
    liveness_value,
    table_repairs,
)
from projections.fold.state import ClusterState
from projections.io.dlq import encode_dead_letter, make_dead_letter
from projections.io.replay import ReplayResult
from projections.io.topics import min_isr
from projections.projector.metrics import (
    RESYNC_TARGETS,
    ProjectorMetrics,
    measure_lag,
    projector_samples,
)
from projections.projector.outputs import Outputs
from projections.projector.reader import ControlLogReader, RawRecord
from projections.projector.settings import ProjectorSettings, faust_credentials
from projections.projector.takeover import Plan, catch_up, plan, published_assignments
from projections.projector.transport import SafeApp
from telemetry.metrics import topic_label

log = logging.getLogger(__name__)

TABLES = ("instances", "assignments", "liveness")


class FaustProjector:
    """The Faust app and the fold state it carries on from ``initial`` (a replay result)."""

    def __init__(
        self,
        settings: ProjectorSettings,
        initial: ReplayResult,
        *,
        replication: int = 1,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        #: replication factor of the changelog topics Faust creates
        self.replication = replication
        self.state: ClusterState = initial.state
        #: next control-log offset to fold; records below it are already in ``state``
        self.offset = initial.offset
        #: whether this member holds the control log's partition (and so writes its effects)
        self.active = False
        #: bumped by every revocation: a takeover that sees it change writes nothing
        self._generation = 0
        self._control_tp = TP(self.topics.events, 0)
        #: one fold catch-up at a time (a standby's periodic one, a takeover's)
        self._folding = asyncio.Lock()
        self.dead_letters = 0
        self.folded = 0
        self.takeovers = 0
        #: writes of takeovers, by target (``metrics.RESYNC_TARGETS``)
        self.resynced: dict[str, int] = {}
        self.metrics = ProjectorMetrics(
            lambda: projector_samples(
                seq=self.state.seq,
                folded=self.folded,
                active=self.active,
                takeovers=self.takeovers,
                resynced=self.resynced,
            ),
            registry,
        )
        self.app = self._make_app()
        self._define()
        self.reader = ControlLogReader(
            settings, self.topics, self.on_control_records, self.app.crash
        )

    def _make_app(self) -> faust.App:
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)  # Faust fails on a missing one
        return SafeApp(
            s.app_id,
            broker=f"kafka://{s.kafka_bootstrap}",
            broker_credentials=faust_credentials(s.kafka_access),
            store=s.store_url,
            web_enabled=False,
            datadir=str(s.data_dir),
            key_serializer="raw",
            value_serializer="raw",
            topic_replication_factor=self.replication,
            topic_partitions=1,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=s.projector_commit_interval,
            broker_session_timeout=s.projector_session_timeout,
            producer_acks=-1,
            # a produce request per few ms, not per record: at thousands of records a second
            # the requests' socket writes were the projector's biggest cost
            producer_linger=s.projector_producer_linger,
            # Faust's worker clears the root handlers when it starts: hand it ours (an
            # incremental config leaves their formatter, JSON or text, as the settings chose)
            logging_config={"version": 1, "incremental": True},
            loghandlers=list(logging.root.handlers),
        )

    def _define(self) -> None:
        app, t = self.app, self.topics
        self.events_topic = self._raw_topic(t.events)
        self.heartbeats_topic = self._raw_topic(t.heartbeats)
        self.dlq_topic = self._raw_topic(t.dlq)
        # Keys and values are JSON (Faust's default for tables). use_partitioner: one
        # partition anyway, and it lets a takeover write outside a stream iteration.
        changelog = {"min.insync.replicas": str(min_isr(self.replication))}
        self.instances = app.Table(
            "instances", partitions=1, use_partitioner=True, extra_topic_configs=changelog
        )
        self.assignments = app.Table(
            "assignments", partitions=1, use_partitioner=True, extra_topic_configs=changelog
        )
        self.liveness = app.Table("liveness", partitions=6, extra_topic_configs=changelog)
        app.agent(self.events_topic, name="control-log")(self._control_agent)
        app.agent(self.heartbeats_topic, name="liveness")(self._heartbeat_agent)
        app.on_partitions_revoked.connect(self._on_partitions_revoked)  # type: ignore[arg-type]
        app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]
        app.timer(self.settings.projector_metrics_interval, name="lag")(self.measure_lag)
        if self.settings.projector_standby_catch_up > 0:
            every = self.settings.projector_standby_catch_up
            app.timer(every, name="standby-catch-up")(self.standby_catch_up)
        app.task(self.metrics.loop_lag.run)

    def _raw_topic(self, name: str) -> Any:
        # bytes in, bytes out: the codec (events.decode*) does the decoding, not Faust
        return self.app.topic(name, key_serializer="raw", value_serializer="raw")

    # --- control log ----------------------------------------------------------------

    async def _control_agent(self, stream: Any) -> None:
        """Subscribes the group to the control log (so that Faust hands its partition to one
        member) and reads nothing: the holder pauses the partition here and reads it with
        :attr:`reader`. A record Faust fetched before the pause is left to the reader."""
        async for _ in stream:
            pass

    async def on_control_records(self, records: list[RawRecord], out: Outputs) -> None:
        """Fold control-log records ``(offset, key, value)`` (those already folded are
        skipped) and write each event's effects through ``out``, in log order: the tables'
        changed keys and a record per changed stream on ``<prefix>.assignments``; returns
        once all of them are acknowledged.

        Per event, not once per batch: a reader of a changelog that sees an entry as of seq
        S must find every key as of S at least (``streamplane check`` relies on it), which
        values coalesced over a batch and written one after another would break."""
        generation = self._generation
        for offset, key, value in records:
            if offset < self.offset:
                continue
            if not self.active or generation != self._generation:
                # revoked meanwhile: the next takeover folds this record (the offset stays)
                log.info("control-log record %d left to the next holder", offset)
                break
            self.offset = offset + 1
            try:
                if value is None:
                    raise MalformedMessageError("record has no value (a tombstone)")
                event = decode_event(value)
            except EventError as exc:
                await self._dead_letter(self.topics.events, 0, offset, key, value, exc)
                continue
            after, changed = apply_tracked(self.state, event)
            self.state = after
            self.folded += 1
            await out.write(self.instances, instance_updates(after, changed.instances))
            updates = assignment_updates(after, event, changed.streams)
            await out.publish(updates)
            await out.write(self.assignments, updates)
            for table, update in table_repairs(after, event):  # a checker's repair of a drift
                target = self.assignments if table == "assignments" else self.instances
                await out.write(target, [update])
                log.info("%s entry %r written again on a consistency repair", table, update.key)
        await out.flush()

    async def _resync(self, writes: Plan, out: Outputs) -> None:
        """A takeover's writes (:func:`takeover.plan`), the reader's first, in its producer."""
        await out.write(self.instances, writes.instances)
        await out.write(self.assignments, writes.assignments)
        await out.publish(writes.published)
        await out.flush()

    # --- holding the control log (projections.projector.takeover) ----------------------

    async def _on_partitions_revoked(
        self, sender: Any, revoked: Any, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        self._generation += 1
        if self._control_tp in revoked and self.active:
            self.active = False
            await self.reader.stop()
            log.info("control log revoked at offset %d (seq %d)", self.offset, self.state.seq)

    async def _on_rebalance_complete(
        self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        """Tables are recovered and no record is processed yet: take the log over if the
        group handed this member its partition."""
        if self._control_tp not in self.app.consumer.assignment():
            self.active = False
            log.info("standby: another member holds %s", self.topics.events)
            return
        if not self.active:
            await self.take_over()

    async def standby_catch_up(self) -> None:
        """A standby folds the log's new records now and then (writing nothing), so that
        taking over has only the tail to fold."""
        if self.active or self._folding.locked():
            return
        async with self._folding:
            try:
                caught = await catch_up(self.settings, self.state, self.offset)
            except KafkaIOError as exc:  # tried again next time, or at the takeover
                log.warning("standby catch-up failed: %s", exc)
                return
            self.state, self.offset = caught.state, caught.offset

    async def take_over(self) -> None:
        """Catch the fold up to the log's end, then make the tables and the topic equal it."""
        async with self._folding:
            await self._take_over()

    async def _take_over(self) -> None:
        generation = self._generation
        caught = await catch_up(self.settings, self.state, self.offset, dead_letters=True)
        self.state, self.offset = caught.state, caught.offset  # a fold of the log either way
        if caught.rejected:  # dead-lettered by the catch-up, as the live agent would
            self.dead_letters += caught.rejected
            label = topic_label(self.topics.events, self.topics.prefix)
            self.metrics.dead_letters.labels(label).inc(caught.rejected)
        topic = await published_assignments(self.settings)
        if generation != self._generation:
            log.info("takeover abandoned: the group rebalanced meanwhile")
            return
        writes = plan(
            self.state,
            topic=topic,
            instances=dict(self.instances.items()),
            assignments=dict(self.assignments.items()),
        )
        self.active = True
        self.app.consumer.pause_partitions([self._control_tp])
        await self.reader.stop()  # one left from a takeover the group undid (it wrote nothing)
        self.reader.start(self.offset, first=lambda out: self._resync(writes, out))
        self.takeovers += 1
        for target, done in zip(RESYNC_TARGETS, writes, strict=True):
            self.resynced[target] = self.resynced.get(target, 0) + len(done)
        log.info(
            "took %s over at seq %d (offset %d, %d event(s) caught up): %d record(s) "
            "republished, %d instance and %d assignment table write(s)",
            self.topics.events,
            self.state.seq,
            self.offset,
            caught.events,
            len(writes.published),
            len(writes.instances),
            len(writes.assignments),
        )

    # --- heartbeats -----------------------------------------------------------------

    async def _heartbeat_agent(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            try:
                if event.value is None:
                    raise MalformedMessageError("record has no value (a tombstone)")
                heartbeat = decode_heartbeat(event.value)
            except EventError as exc:
                await self._dead_letter(
                    message.topic, message.partition, message.offset, message.key, event.value, exc
                )
                continue
            new = liveness_value(heartbeat)
            if liveness_supersedes(new, self.liveness.get(heartbeat.server_id)):
                self.liveness[heartbeat.server_id] = new

    # --- dead letters ---------------------------------------------------------------

    async def _dead_letter(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        exc: EventError,
    ) -> None:
        letter = make_dead_letter(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            error=exc,
            now=datetime.now(UTC),
        )
        log.warning("dead letter %s[%d]@%d: %s", topic, partition, offset, exc)
        await self.dlq_topic.send(key=topic.encode(), value=encode_dead_letter(letter))
        self.dead_letters += 1
        self.metrics.dead_letters.labels(topic_label(topic, self.topics.prefix)).inc()

    # --- metrics --------------------------------------------------------------------

    async def measure_lag(self) -> None:
        """Set the lag gauges (``projections.projector.metrics``) from the consumer."""
        control = await self.reader.lag()
        await measure_lag(self.app.consumer, self.topics, self.offset, self.metrics, control)


__all__ = ["FaustProjector", "ProjectorSettings", "RawRecord"]
