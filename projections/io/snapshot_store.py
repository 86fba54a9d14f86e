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

from events.topics import SNAPSHOTS, Topics
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

log = logging.getLogger(__name__)


# --- the Kafka adapter ------------------------------------------------------------------


class SnapshotSettings(BaseSettings):
    """Tuning of the snapshot store; env ``STREAMPLANE_SNAPSHOT_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_SNAPSHOT_", frozen=True)

    #: seconds for any single Kafka call (start, offsets, one fetch, one send)
    kafka_timeout: float = Field(default=30.0, gt=0)
    #: the largest compressed snapshot (also the topic's ``max.message.bytes``)
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024 * 1024)
    #: zlib level (1 = fast; 9 = smallest)
    compression_level: int = Field(default=1, ge=0, le=9)
    #: records ``latest()`` inspects, newest first, before concluding there is no valid one
    lookback: int = Field(default=8, ge=1)
    #: roll the topic's active segment this often, so compaction drops older snapshots
    segment_ms: int = Field(default=3600 * 1000, ge=60 * 1000)


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
                        self.bootstrap, linger_ms=0, max_request_size=cfg.max_bytes + 64 * 1024
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
        """Let the topic hold big records and roll segments so compaction can run.

        ``events.topics`` has no field for these yet. A (non-incremental) alter replaces
        every override, so the spec's own settings are repeated here."""
        cfg = self.settings
        configs = {
            "cleanup.policy": "compact" if SNAPSHOTS.compacted else "delete",
            "retention.ms": str(SNAPSHOTS.retention_ms),
            "max.message.bytes": str(cfg.max_bytes + 64 * 1024),
            "segment.ms": str(cfg.segment_ms),
        }
        admin = make_admin(self.bootstrap)
        async with started(admin, kafka_timeout=cfg.kafka_timeout, what="Kafka admin client"):
            responses = await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, self.topic, configs=configs)]
            )
        for response in responses:
            for error_code, message, *_ in response.resources:
                if error_code:
                    raise TopicSetupError(f"configure {self.topic}: error {error_code}: {message}")
        self._configured = True

    async def latest(self, *, skipped: list[str] | None = None) -> Snapshot | None:
        """The newest snapshot that decodes and whose digest checks out; None when the topic
        is empty or missing, or the last ``lookback`` records are all invalid (each logged,
        and described in ``skipped`` when a list is given)."""
        cfg = self.settings
        consumer = make_consumer(
            self.bootstrap,
            auto_offset_reset="none",
            max_partition_fetch_bytes=cfg.max_bytes + 64 * 1024,
            fetch_max_bytes=cfg.max_bytes + 64 * 1024,
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
