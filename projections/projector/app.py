"""The Faust projector (``streamplane projector``): tables ``instances``, ``assignments`` and
``liveness``, and the analytics topic ``<prefix>.assignments``.

Two agents:

- **control log** (``<prefix>.events``, one partition, read_committed through
  :mod:`projections.projector.transport`): each event is folded with :func:`projections.fold.apply`;
  the instances and streams it changed (:func:`projections.fold.assignments.changes`) are written to
  the ``instances`` and ``assignments`` tables, and one record per changed stream goes to
  ``<prefix>.assignments`` (a tombstone when the stream was deregistered). Nothing else writes
  those tables: they are materialisations of the fold.
- **heartbeats** (``<prefix>.heartbeats``, keyed by ``server_id``): the ``liveness`` table keeps
  each server's last heartbeat time, incarnation, reported stream counts and metrics.

A record that does not decode goes to ``<prefix>.dlq`` and the agent goes on.

**Where the fold state comes from.** Faust's own offsets and changelogs cannot rebuild a
``ClusterState``, so on start the projector replays the control log from offset 0 with
:func:`projections.io.replay.replay` (the fast path: big fetches, no Faust overhead) up to the end
``E`` it finds. The agent then skips every record below ``E`` (already folded) whatever offset
Faust's consumer group resumes from (``auto_offset_reset="earliest"`` for a new group), and
folds the rest live. Once the tables are recovered from their changelogs (Faust's
``on_rebalance_complete``, before any record is processed), the projector compares them with
the replayed state and writes only the differences, publishing those streams with reason
``projector_resync``: the tables and the topic converge even if the previous run died between
folding an event and writing its effects.

**No exactly_once.** Faust runs at-least-once; correctness comes from idempotence instead: the
fold ignores an exact duplicate ``seq``, table writes are keyed upserts of values derived from
the state, and assignment records are keyed, compacted and carry ``as_of_seq``.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust
import orjson
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from events.codec import decode_event, decode_heartbeat
from events.errors import EventError, MalformedMessageError
from events.topics import (
    ASSIGNMENTS,
    DEFAULT_BOOTSTRAP,
    DEFAULT_PREFIX,
    DLQ,
    EVENTS,
    HEARTBEATS,
    Topics,
    changelog_topic,
    projector_app_id,
)
from kafka_auth import KafkaAccess, KafkaClientSettings
from projections.fold import apply
from projections.fold.assignments import (
    Update,
    assignment_updates,
    changes,
    instance_updates,
    liveness_supersedes,
    liveness_value,
    resync_assignments,
    resync_instances,
    table_repairs,
)
from projections.fold.state import ClusterState
from projections.io.dlq import encode_dead_letter, make_dead_letter
from projections.io.replay import ReplayResult, ReplaySettings, replay
from projections.io.topics import ensure_topics
from projections.projector.metrics import ProjectorMetrics, fold_lag, projector_samples
from projections.projector.transport import SafeApp
from telemetry.metrics import MetricsAddress, process_registry, serving, topic_label

log = logging.getLogger(__name__)

TABLES = ("instances", "assignments", "liveness")


class ProjectorSettings(KafkaClientSettings):
    """The Faust projector process (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
    #: Faust app id = consumer group and changelog prefix; default ``<prefix>-projector``
    projector_id: str | None = None
    #: replication of Faust's changelog topics (3 on a production cluster)
    projector_replication_factor: int = Field(default=1, ge=1)
    #: seconds for any single Kafka call of the start-up replay
    projector_kafka_timeout: float = Field(default=30.0, gt=0)
    #: Faust's data directory (memory store: only bookkeeping); default under the temp dir
    projector_data_dir: str | None = None
    #: Faust's offset commit interval, seconds
    projector_commit_interval: float = Field(default=1.0, gt=0)
    #: serve Prometheus metrics on ``host:port`` (empty: no endpoint); docs/metrics.md
    metrics_address: MetricsAddress = ""
    #: seconds between two measurements of the consumer and projection lags
    projector_metrics_interval: float = Field(default=5.0, gt=0)

    @property
    def app_id(self) -> str:
        return projector_app_id(self.topic_prefix, self.projector_id)

    def changelog_topic(self, table: str) -> str:
        """The Kafka topic Faust keeps ``table`` in (``<app id>-<table>-changelog``)."""
        return changelog_topic(self.app_id, table)


def faust_credentials(access: KafkaAccess) -> faust.SASLCredentials | None:
    """Faust's form of the process's Kafka credentials (None: plaintext)."""
    if not access.uses_sasl:
        return None
    return faust.SASLCredentials(
        username=access.sasl_username,
        password=access.password(),
        ssl_context=access.ssl_context(),
        mechanism=access.sasl_mechanism,
    )


def _json(value: dict[str, Any] | None) -> bytes | None:
    return None if value is None else orjson.dumps(value)


class FaustProjector:
    """The Faust app and the fold state it carries on from ``initial`` (a replay result)."""

    def __init__(
        self,
        settings: ProjectorSettings,
        initial: ReplayResult,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.state: ClusterState = initial.state
        #: next control-log offset to fold; records below it are already in ``state``
        self.offset = initial.offset
        self.dead_letters = 0
        self.folded = 0
        self.metrics = ProjectorMetrics(
            lambda: projector_samples(seq=self.state.seq, folded=self.folded), registry
        )
        self.app = self._make_app()
        self._define()

    def _make_app(self) -> faust.App:
        s = self.settings
        data_dir = Path(s.projector_data_dir or Path(tempfile.gettempdir()) / "streamplane-faust")
        data_dir.mkdir(parents=True, exist_ok=True)  # Faust fails on a missing one
        return SafeApp(
            s.app_id,
            broker=f"kafka://{s.kafka_bootstrap}",
            broker_credentials=faust_credentials(s.kafka_access),
            store="memory://",
            web_enabled=False,
            datadir=str(data_dir / s.app_id),
            key_serializer="raw",
            value_serializer="raw",
            topic_replication_factor=s.projector_replication_factor,
            topic_partitions=1,
            consumer_auto_offset_reset="earliest",
            broker_commit_interval=s.projector_commit_interval,
            producer_acks=-1,
            # Faust's worker clears the root handlers when it starts: hand it ours (an
            # incremental config leaves their formatter, JSON or text, as the settings chose)
            logging_config={"version": 1, "incremental": True},
            loghandlers=list(logging.root.handlers),
        )

    def _define(self) -> None:
        app, t = self.app, self.topics
        self.events_topic = self._raw_topic(t.events)
        self.heartbeats_topic = self._raw_topic(t.heartbeats)
        self.assignments_topic = self._raw_topic(t.assignments)
        self.dlq_topic = self._raw_topic(t.dlq)
        # Keys and values are JSON (Faust's default for tables). use_partitioner: one
        # partition anyway, and it lets the start-up resync write outside a stream iteration.
        self.instances = app.Table("instances", partitions=1, use_partitioner=True)
        self.assignments = app.Table("assignments", partitions=1, use_partitioner=True)
        self.liveness = app.Table("liveness", partitions=6)
        app.agent(self.events_topic, name="control-log")(self._control_agent)
        app.agent(self.heartbeats_topic, name="liveness")(self._heartbeat_agent)
        app.on_rebalance_complete.connect(self._on_rebalance_complete)  # type: ignore[arg-type]
        app.timer(self.settings.projector_metrics_interval, name="lag")(self.measure_lag)
        app.task(self.metrics.loop_lag.run)

    def _raw_topic(self, name: str) -> Any:
        # bytes in, bytes out: the codec (events.decode*) does the decoding, not Faust
        return self.app.topic(name, key_serializer="raw", value_serializer="raw")

    # --- control log ----------------------------------------------------------------

    async def _control_agent(self, stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            await self.on_control_record(message.offset, message.key, event.value)

    async def on_control_record(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        """Fold one control-log record (skipped when already folded) and write its effects."""
        if offset < self.offset:
            return
        self.offset = offset + 1
        try:
            if value is None:
                raise MalformedMessageError("record has no value (a tombstone)")
            event = decode_event(value)
        except EventError as exc:
            await self._dead_letter(self.topics.events, 0, offset, key, value, exc)
            return
        before = self.state
        self.state = after = apply(before, event)
        self.folded += 1
        changed = changes(before, after, event)
        self._write(self.instances, instance_updates(after, changed.instances))
        updates = assignment_updates(after, event, changed.streams)
        await self._publish(updates)
        self._write(self.assignments, updates)
        for table, update in table_repairs(after, event):  # a checker's repair of a drift
            self._write(self.assignments if table == "assignments" else self.instances, [update])
            log.info("%s entry %r written again on a consistency repair", table, update.key)

    async def _publish(self, updates: list[Update]) -> None:
        for update in updates:
            await self.assignments_topic.send(key=update.key.encode(), value=_json(update.value))

    @staticmethod
    def _write(table: Any, updates: list[Update]) -> None:
        for update in updates:
            if update.value is None:
                table.pop(update.key, None)
            else:
                table[update.key] = update.value

    async def _on_rebalance_complete(
        self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any
    ) -> None:
        """Tables are recovered; make them (and the topic) match the replayed state."""
        state = self.state
        self._write(self.instances, resync_instances(state, dict(self.instances.items())))
        updates = resync_assignments(state, dict(self.assignments.items()))
        await self._publish(updates)
        self._write(self.assignments, updates)
        log.info(
            "projector resynced at seq %d (offset %d): %d assignment record(s) republished",
            state.seq,
            self.offset,
            len(updates),
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
        consumer = self.app.consumer
        behind: dict[str, int] = {}
        for tp in consumer.assignment():
            try:
                highwater, position = consumer.highwater(tp), await consumer.position(tp)
            except KafkaError as exc:  # e.g. revoked meanwhile: measured again next time
                log.debug("lag of %s not measured: %s", tp, exc)
                continue
            if highwater is not None and position is not None:
                role = topic_label(tp.topic, self.topics.prefix)
                behind[role] = behind.get(role, 0) + max(0, highwater - position)
            if tp.topic == self.topics.events:
                lag = fold_lag(highwater, self.offset)
                if lag is not None:
                    self.metrics.lag.set(lag)
        for role, offsets in behind.items():
            self.metrics.consumer_lag.labels(role).set(offsets)


async def prepare(settings: ProjectorSettings) -> ReplayResult:
    """Create the topics the projector writes and replay the control log (the start state)."""
    topics = Topics(settings.topic_prefix)
    await ensure_topics(settings.kafka_access, topics, (EVENTS, HEARTBEATS, ASSIGNMENTS, DLQ))
    result = await replay(
        settings.kafka_access,
        topics.events,
        settings=ReplaySettings(kafka_timeout=settings.projector_kafka_timeout),
    )
    log.info(
        "replayed %s: %d event(s), seq %d, next offset %d, %d undecodable (logged)",
        topics.events,
        result.events,
        result.state.seq,
        result.offset,
        result.rejected,
    )
    return result


def run_projector(settings: ProjectorSettings, *, loglevel: str = "info") -> None:
    """Replay, then run the Faust worker until SIGTERM/SIGINT (blocking), with its
    ``/metrics`` endpoint when ``metrics_address`` is set."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    registry = process_registry()  # served from the start: a long replay is worth watching
    with serving(registry, settings.metrics_address):
        initial = loop.run_until_complete(prepare(settings))
        projector = FaustProjector(settings, initial, registry=registry)
        worker = faust.Worker(projector.app, loop=loop, loglevel=loglevel, quiet=True)
        worker.execute_from_commandline()


def main() -> None:
    """``python -m projections.projector.app``: run with settings from the environment."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run_projector(ProjectorSettings())


if __name__ == "__main__":
    main()
