"""The snapshot store: snapshots (:mod:`projections.fold.snapshots`) on ``<prefix>.snapshots``."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from events.topics import (
    SNAPSHOT_MAX_BYTES,
    SNAPSHOT_RECORD_OVERHEAD,
    SNAPSHOT_SEGMENT_MS,
    SNAPSHOTS,
    Topics,
)
from kafka_auth import Brokers
from projections.errors import (
    InvalidSnapshotError,
    TopicSetupError,
    UnknownTopicError,
)
from projections.fold.snapshots import SNAPSHOT_KEY, Snapshot, decode_snapshot, encode_snapshot
from projections.io.kafka import (
    check_topic,
    kafka_error,
    make_admin,
    make_consumer,
    make_producer,
    started,
)
from projections.io.topics import topic_config, topic_configs

log = logging.getLogger(__name__)


# --- the Kafka adapter ------------------------------------------------------------------


class SnapshotSettings(BaseSettings):
    """Tuning of the snapshot store; env ``STREAMPLANE_SNAPSHOT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_SNAPSHOT_", frozen=True)

    #: seconds for any single Kafka call (start, offsets, one fetch, one send)
    kafka_timeout: float = Field(default=30.0, gt=0)
    #: the largest compressed snapshot (also the topic's ``max.message.bytes``)
    max_bytes: int = Field(default=SNAPSHOT_MAX_BYTES, ge=1024 * 1024)
    #: zlib level (1 = fast; 9 = smallest)
    compression_level: int = Field(default=1, ge=0, le=9)
    #: records ``latest()`` inspects, newest first, before concluding there is no valid one
    lookback: int = Field(default=8, ge=1)
    #: roll the topic's active segment this often, so compaction drops older snapshots
    segment_ms: int = Field(default=SNAPSHOT_SEGMENT_MS, ge=60 * 1000)


class SnapshotStore:
    """Reads and writes snapshots on ``topics.snapshots`` (compacted, one partition).

    ``async with SnapshotStore(bootstrap, topics) as store``: ``await store.latest()`` is the
    newest valid snapshot (or None), ``await store.write(snapshot)`` appends one with an
    idempotent producer (acks=all), outside any transaction: a snapshot is derived data.
    """

    def __init__(
        self, bootstrap: Brokers, topics: Topics, *, settings: SnapshotSettings | None = None
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topics.snapshots
        self.settings = settings or SnapshotSettings()
        self._tp = TopicPartition(self.topic, 0)
        self._producer: Any = None
        self._configured = False

    async def __aenter__(self) -> SnapshotStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop the producer (if one was started)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                async with asyncio.timeout(self.settings.kafka_timeout):
                    await producer.stop()
            except (TimeoutError, kafka_errors.KafkaError) as exc:
                log.warning("stopping the snapshot producer failed: %s", exc)

    async def write(self, snapshot: Snapshot) -> int:
        """Append ``snapshot`` (key ``cluster``); returns its offset. Raises a
        :class:`KafkaIOError` on failure, :class:`InvalidSnapshotError` if too big."""
        cfg = self.settings
        value = await asyncio.to_thread(encode_snapshot, snapshot, level=cfg.compression_level)
        if len(value) > cfg.max_bytes:
            raise InvalidSnapshotError(
                f"snapshot at seq {snapshot.seq} is {len(value)} bytes compressed, over "
                f"max_bytes {cfg.max_bytes} (STREAMPLANE_SNAPSHOT_MAX_BYTES)"
            )
        try:
            async with asyncio.timeout(cfg.kafka_timeout):
                if not self._configured:
                    await self._configure_topic()
                if self._producer is None:
                    producer = make_producer(
                        self.bootstrap,
                        linger_ms=0,
                        max_request_size=cfg.max_bytes + SNAPSHOT_RECORD_OVERHEAD,
                    )
                    await producer.start()
                    self._producer = producer
                meta = await self._producer.send_and_wait(
                    self.topic, value, key=SNAPSHOT_KEY, partition=0
                )
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"write snapshot seq {snapshot.seq} to {self.topic}") from exc
        return int(meta.offset)

    async def _configure_topic(self) -> None:
        """Make sure the topic holds records of ``max_bytes`` and rolls its segments at least
        every ``segment_ms`` (so compaction can run).

        ``ensure_topics`` creates it so for the default settings (``events.topics``), and
        then nothing is changed. Otherwise (a bigger ``max_bytes``, a topic made before the
        contract said so) its settings are altered; a (non-incremental) alter replaces every
        override, so the contract's own settings (``min.insync.replicas`` among them) are
        written again with it."""
        cfg = self.settings
        record = cfg.max_bytes + SNAPSHOT_RECORD_OVERHEAD
        wanted = {"max.message.bytes": str(record), "segment.ms": str(cfg.segment_ms)}
        admin = make_admin(self.bootstrap)
        async with started(admin, kafka_timeout=cfg.kafka_timeout, what="Kafka admin client"):
            now = (await topic_configs(admin, [self.topic], wanted))[self.topic]
            if (
                int(now.get("max.message.bytes", 0)) >= record
                and int(now.get("segment.ms", cfg.segment_ms + 1)) <= cfg.segment_ms
            ):
                self._configured = True
                return
            [described] = await admin.describe_topics([self.topic])
            rf = min(len(p.get("replicas", ())) for p in described["partitions"])
            configs = {**topic_config(SNAPSHOTS, rf), **wanted}
            responses = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, self.topic, configs=configs)]
            )
        for response in responses:
            for error_code, message, *_ in response.resources:
                if error_code:
                    raise TopicSetupError(
                        f"configure {self.topic} for snapshots of up to {cfg.max_bytes} bytes "
                        f"(STREAMPLANE_SNAPSHOT_MAX_BYTES): error {error_code}: {message} "
                        f"(fix: kafka-configs.sh --alter --entity-type topics --entity-name "
                        f"{self.topic} --add-config max.message.bytes={record},"
                        f"segment.ms={cfg.segment_ms})"
                    )
        log.info("%s: set max.message.bytes=%d, segment.ms=%d", self.topic, record, cfg.segment_ms)
        self._configured = True

    async def latest(self, *, skipped: list[str] | None = None) -> Snapshot | None:
        """The newest snapshot that decodes and whose digest checks out; None when the topic
        is empty or missing, or the last ``lookback`` records are all invalid (each logged,
        and described in ``skipped`` when a list is given)."""
        cfg = self.settings
        consumer = make_consumer(
            self.bootstrap,
            auto_offset_reset="none",
            max_partition_fetch_bytes=cfg.max_bytes + SNAPSHOT_RECORD_OVERHEAD,
            fetch_max_bytes=cfg.max_bytes + SNAPSHOT_RECORD_OVERHEAD,
            request_timeout_ms=int(cfg.kafka_timeout * 1000),
        )
        async with started(consumer, kafka_timeout=cfg.kafka_timeout, what="snapshot reader"):
            try:
                async with asyncio.timeout(cfg.kafka_timeout):
                    try:
                        await check_topic(consumer, self.topic)
                    except UnknownTopicError:
                        return None
                    consumer.assign([self._tp])
                    begin = (await consumer.beginning_offsets([self._tp]))[self._tp]
                    end = (await consumer.end_offsets([self._tp]))[self._tp]
            except (TimeoutError, kafka_errors.KafkaError) as exc:
                raise kafka_error(exc, f"offsets of {self.topic}") from exc
            offset = int(end) - 1
            for _ in range(cfg.lookback):
                if offset < int(begin):
                    return None
                record = await self._read_at(consumer, offset)
                if record is not None:
                    found, value = record
                    if found == offset and value is not None:
                        try:
                            return await asyncio.to_thread(decode_snapshot, value)
                        except InvalidSnapshotError as exc:
                            log.warning("ignoring snapshot at %s@%d: %s", self.topic, offset, exc)
                            if skipped is not None:
                                skipped.append(f"{self.topic}@{offset}: {exc}")
                offset -= 1
        return None

    async def _read_at(self, consumer: Any, offset: int) -> tuple[int, bytes | None] | None:
        """The record at or after ``offset`` (compaction leaves holes), or None past the end."""
        cfg = self.settings
        consumer.seek(self._tp, offset)
        try:
            async with asyncio.timeout(cfg.kafka_timeout):
                while True:
                    batch = await consumer.getmany(self._tp, timeout_ms=500, max_records=1)
                    records = batch.get(self._tp, [])
                    if records:
                        return int(records[0].offset), records[0].value
                    if await consumer.position(self._tp) > offset:
                        return None
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"read {self.topic}@{offset}") from exc


__all__ = ["SnapshotSettings", "SnapshotStore"]
