"""Replay the control log from Kafka through the codec and the one pure fold.

``await replay(bootstrap, "streamplane.events")`` reads partition 0 from ``from_offset``
with a read_committed consumer (manual ``assign`` + ``seek``, ``getmany``), decodes every
record with :func:`events.decode_event` and folds it with the one fold
(:mod:`projections.fold.driver`).
It stops at the end offset captured when it starts (the last stable offset: records of
transactions still open lie beyond it), or earlier at ``until_offset`` / ``until_time``.

A record that does not decode (any :class:`events.EventError`) goes to the dead-letter sink
and is counted in ``rejected``; the replay goes on. Nothing is skipped silently.

Offsets are not contiguous on a transactional log (commit/abort markers take offsets, and
aborted records are filtered out), so the end is detected by the consumer's *position*
reaching the stop offset, never by counting records.

A long replay reads in a child process that also checks the records
(:mod:`projections.io.prefetch`, :mod:`events._fast.handover`); the batch step, the same either way,
is :mod:`projections.io.replay_batch`. The fold runs in place (:class:`projections.fold.Folder`),
the same state ``apply`` reaches event by event. Time travel over events already in memory
is :func:`projections.fold.fold_until`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka import errors as kafka_errors
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from kafka_auth import Brokers
from projections.errors import KafkaUnavailableError, OffsetOutOfRangeError
from projections.fold import HalfWrittenError
from projections.fold.state import ClusterState
from projections.io.dlq import DeadLetter, DeadLetterSink
from projections.io.kafka import check_topic, fetch_batch, kafka_error, make_consumer, started
from projections.io.prefetch import ChildSpec, prefetched
from projections.io.replay_batch import DECODE_CHUNK, Clock, Columns, Run, write_dead_letters

log = logging.getLogger(__name__)


class ReplaySettings(BaseSettings):
    """Tuning of a replay; env ``STREAMPLANE_REPLAY_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_REPLAY_", frozen=True)

    #: seconds for any single Kafka call (start, offsets, one fetch)
    kafka_timeout: float = Field(default=30.0, gt=0)
    #: seconds without any progress while below the stop offset before giving up
    stall_timeout: float = Field(default=60.0, gt=0)
    #: how long one ``getmany`` waits for data
    poll_timeout_ms: int = Field(default=500, ge=1)
    #: records handed over per ``getmany`` (big batches amortise the per-call overhead)
    max_records: int = Field(default=20_000, ge=1)
    #: fetch sizes: a replay reads one partition sequentially, so ask for big chunks
    max_partition_fetch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    fetch_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: call ``on_progress`` every this many records
    progress_every: int = Field(default=100_000, ge=1)
    #: dead letters kept in the result for the caller to show (all are counted)
    rejections_kept: int = Field(default=100, ge=0)
    #: read in a child process while this one decodes and folds (projections.io.prefetch):
    #: "auto" does so for at least ``prefetch_min_records`` records on a multi-core machine
    prefetch: Literal["auto", "on", "off"] = "auto"
    prefetch_min_records: int = Field(default=100_000, ge=0)
    #: the reader process also checks the records and hands them over decoded
    #: (:mod:`events._fast.handover`), so that this one mostly folds
    prefetch_decode: bool = True


class ReplayProgress(NamedTuple):
    """Where a long replay stands: the next offset, the stop offset and the counts so far."""

    offset: int
    stop_offset: int
    events: int
    rejected: int


class ReplayResult(NamedTuple):
    """The folded ``state``; ``offset`` is the next offset to read (resume with
    ``from_state=state, from_offset=offset``); ``events`` were folded, ``rejected`` were
    dead-lettered. ``rejections`` holds the first few dead letters. ``reader`` says where
    the log was read: ``"process"`` (here) or ``"child"`` (:mod:`projections.io.prefetch`);
    ``prechecked`` of the events were checked there (:mod:`events._fast.handover`)."""

    state: ClusterState
    offset: int
    events: int
    rejected: int
    rejections: tuple[DeadLetter, ...] = ()
    reader: Literal["process", "child"] = "process"
    prechecked: int = 0


ProgressCallback = Callable[[ReplayProgress], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def replay(
    bootstrap: Brokers,
    topic: str,
    *,
    until_offset: int | None = None,
    until_time: datetime | None = None,
    from_state: ClusterState | None = None,
    from_offset: int = 0,
    on_progress: ProgressCallback | None = None,
    dlq: DeadLetterSink | None = None,
    partition: int = 0,
    settings: ReplaySettings | None = None,
    clock: Clock = _utc_now,
) -> ReplayResult:
    """Fold the control log ``topic`` from ``from_offset`` (onto ``from_state``, default an
    empty state) up to the end captured at start, ``until_offset`` (exclusive) or the first
    event whose ``time`` is after ``until_time``, whichever comes first.

    Undecodable records go to ``dlq`` (if given; logged either way) and are counted.
    Raises :class:`OffsetOutOfRangeError` if ``from_offset`` is not in the log, and a
    :class:`KafkaIOError` when Kafka fails or stalls (``retriable`` says if a retry helps).

    Should the in-place fold break (:class:`projections.fold.HalfWrittenError`, a bug the
    tests rule out), the replay logs it as an error (the fold itself logs nothing) and runs
    again from the start with ``apply``, event by event; dead letters already written are not
    written twice, and progress starts over.
    """
    cfg = settings or ReplaySettings()
    state = from_state or ClusterState()
    args = (bootstrap, topic, until_offset, until_time, from_offset, on_progress, dlq, cfg)
    run = Run(topic, partition, state, clock)
    try:
        return await _replay(run, *args)
    except HalfWrittenError as exc:
        log.error("replay of %s: in-place fold failed (%s); again, event by event", topic, exc)
    again = Run(topic, partition, state, clock, in_place=False, letters_from=run.letters_to)
    return await _replay(again, *args)


async def _replay(
    run: Run,
    bootstrap: Brokers,
    topic: str,
    until_offset: int | None,
    until_time: datetime | None,
    from_offset: int,
    on_progress: ProgressCallback | None,
    dlq: DeadLetterSink | None,
    cfg: ReplaySettings,
) -> ReplayResult:
    consumer_settings = _consumer_settings(cfg)
    consumer = make_consumer(bootstrap, **consumer_settings)
    tp = TopicPartition(topic, run.partition)
    loop = _Loop(run, from_offset, until_time, dlq, on_progress, cfg)
    async with started(
        consumer, kafka_timeout=cfg.kafka_timeout, what=f"replay consumer of {topic}"
    ):
        stop = await _prepare(consumer, tp, from_offset, until_offset, cfg.kafka_timeout)
        in_child = _prefetch(cfg, stop - from_offset)
        if not in_child:
            offset = await loop.run(_fetcher(consumer, tp, cfg), stop)
    if in_child:
        spec = ChildSpec(
            bootstrap,
            topic,
            run.partition,
            from_offset,
            stop,
            consumer_settings,
            cfg.kafka_timeout,
            cfg.poll_timeout_ms,
            cfg.max_records,
            DECODE_CHUNK if cfg.prefetch_decode else 0,
        )
        async with prefetched(spec) as reader:
            offset = await loop.run(lambda: reader.next(cfg.kafka_timeout), stop)
    if dlq is not None:
        await dlq.flush()
    if run.rejected:
        log.warning("replay of %s: %d record(s) dead-lettered", topic, run.rejected)
    result = ReplayResult(
        run.state,
        offset,
        run.events,
        run.rejected,
        tuple(run.kept),
        "child" if in_child else "process",
        run.prechecked,
    )
    final = ReplayProgress(offset, stop, run.events, run.rejected)
    if on_progress is not None and final != loop.reported:
        on_progress(final)
    return result


def _consumer_settings(cfg: ReplaySettings) -> dict[str, Any]:
    """The replay consumer's settings (the reader process uses the very same)."""
    return {
        "auto_offset_reset": "none",  # never jump silently to another offset
        "max_partition_fetch_bytes": cfg.max_partition_fetch_bytes,
        "fetch_max_bytes": cfg.fetch_max_bytes,
        "request_timeout_ms": int(cfg.kafka_timeout * 1000),
    }


def _prefetch(cfg: ReplaySettings, records: int) -> bool:
    """Whether to read in a child process: worth it for long replays with a core to spare."""
    if cfg.prefetch != "auto":
        return cfg.prefetch == "on"
    return records >= cfg.prefetch_min_records and (os.cpu_count() or 1) > 1


Fetch = Callable[[], Awaitable[Columns]]


def _fetcher(consumer: AIOKafkaConsumer, tp: TopicPartition, cfg: ReplaySettings) -> Fetch:
    """One ``getmany`` in this process, as :class:`Columns` (what the child sends)."""

    async def fetch() -> Columns:
        records, new_position = await fetch_batch(
            consumer,
            tp,
            kafka_timeout=cfg.kafka_timeout,
            poll_timeout_ms=cfg.poll_timeout_ms,
            max_records=cfg.max_records,
            where=f"fetch {tp.topic}[{tp.partition}]",
        )
        return Columns(
            new_position,
            [r.offset for r in records],
            [r.timestamp for r in records],
            [r.key for r in records],
            [r.value for r in records],
        )

    return fetch


async def _prepare(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    from_offset: int,
    until_offset: int | None,
    kafka_timeout: float,
) -> int:
    """Assign ``tp``, check ``from_offset`` lies in the log, seek; returns the stop offset."""
    try:
        async with asyncio.timeout(kafka_timeout):
            await check_topic(consumer, tp.topic)
            consumer.assign([tp])
            begin = (await consumer.beginning_offsets([tp]))[tp]
            end = (await consumer.end_offsets([tp]))[tp]
    except (TimeoutError, kafka_errors.KafkaError) as exc:
        raise kafka_error(exc, f"offsets of {tp.topic}[{tp.partition}]") from exc
    begin, end = int(begin), int(end)
    if not begin <= from_offset <= end:
        raise OffsetOutOfRangeError(
            f"{tp.topic}[{tp.partition}]: from_offset {from_offset} is outside the log "
            f"[{begin}, {end}]"
        )
    consumer.seek(tp, from_offset)
    return end if until_offset is None else max(from_offset, min(end, until_offset))


class _Loop:
    """The fetch-and-fold loop, fed by either fetcher."""

    def __init__(
        self,
        run: Run,
        start: int,
        until_time: datetime | None,
        dlq: DeadLetterSink | None,
        on_progress: ProgressCallback | None,
        cfg: ReplaySettings,
    ) -> None:
        self.bookkeeping = run
        self.start = start
        self.until_time = until_time
        self.dlq = dlq
        self.on_progress = on_progress
        self.cfg = cfg
        #: the last progress reported (the final one is not repeated)
        self.reported: ReplayProgress | None = None

    async def run(self, fetch: Fetch, stop: int) -> int:
        """Fold up to ``stop``; returns the offset the replay ended at (the next one to
        read). Progress is reported at batch boundaries, once per ``progress_every``."""
        run, cfg, on_progress = self.bookkeeping, self.cfg, self.on_progress
        clock = asyncio.get_running_loop().time
        position, last_progress = self.start, clock()
        next_report = run.events + cfg.progress_every
        while position < stop:
            batch = await fetch()
            letters, ended_at = run.fold_batch(batch, stop, self.until_time)
            await write_dead_letters(letters, run, self.dlq, cfg.rejections_kept)
            if ended_at is not None:
                return ended_at
            if batch.position > position:
                position, last_progress = batch.position, clock()
            elif clock() - last_progress > cfg.stall_timeout:
                raise KafkaUnavailableError(
                    f"replay of {run.topic}[{run.partition}] stalled at offset {position} "
                    f"(stop {stop}) for {cfg.stall_timeout:.0f}s"
                )
            if on_progress is not None and run.events >= next_report:
                while next_report <= run.events:  # one report per multiple crossed at most
                    next_report += cfg.progress_every
                self.reported = ReplayProgress(min(position, stop), stop, run.events, run.rejected)
                on_progress(self.reported)
        return stop


def replay_to_time(
    bootstrap: Brokers,
    topic: str,
    until_time: datetime,
    *,
    from_state: ClusterState | None = None,
    from_offset: int = 0,
    dlq: DeadLetterSink | None = None,
    settings: ReplaySettings | None = None,
) -> ReplayResult:
    """Blocking wrapper for audits and scripts (not from inside an event loop): the state
    the control log described at ``until_time``; arguments as for :func:`replay`."""
    return asyncio.run(
        replay(
            bootstrap,
            topic,
            until_time=until_time,
            from_state=from_state,
            from_offset=from_offset,
            dlq=dlq,
            settings=settings,
        )
    )
