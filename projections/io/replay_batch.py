"""One replay's batch step: decode (or unpack) and fold a fetched batch, dead letters aside.

:class:`Run` holds what a replay accumulates (the folder, the counts, the first dead letters)
and folds one :class:`Columns` at a time, chunk by chunk: a chunk the reader process checked
and packed is unpacked (:mod:`events._fast.handover`), a raw one goes through the decode's
fast path whole, or record by record (precise errors, dead letters) when that path refuses
it. :func:`projections.io.replay.replay` drives it; ``tests/unit/test_replay_batch.py`` tests
it without Kafka. :class:`Columns` is defined here, not beside the reader process
(:mod:`projections.io.prefetch`) that also sends it: the batch step does not depend on how
the batch was read.
"""

from __future__ import annotations

import gc
import logging
from bisect import bisect_left
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import NamedTuple

from events.base import ControlEvent
from events.codec import decode_event, decode_events_fast, unpack_events
from events.errors import EventError, MalformedMessageError
from projections.fold import Folder, StepFolder
from projections.fold.state import ClusterState
from projections.io.dlq import DeadLetter, DeadLetterSink, make_dead_letter

log = logging.getLogger("projections.io.replay")

Clock = Callable[[], datetime]

#: records decoded at once before they are folded (see Run._fold_batch); the reader
#: process packs chunks of the same size
DECODE_CHUNK = 256


class Columns(NamedTuple):
    """One fetched batch, read here or by the reader process: ``position`` is the consumer's
    position after it. Either ``values`` holds every record's value, or ``chunks`` holds them
    by chunks of ``ChildSpec.pack_chunk`` records (:mod:`projections.io.prefetch`): each the
    chunk's events checked and packed (:func:`events.codec.pack_events`), or its raw values
    where they could not be. ``timestamps`` and ``keys`` are empty when every chunk is packed
    (they only serve dead letters)."""

    position: int
    offsets: list[int]
    timestamps: list[int]
    keys: list[bytes | None]
    values: list[bytes | None]
    chunks: list[bytes | list[bytes | None]] = []  # never mutated


class Run:
    """The mutable bookkeeping of one replay (kept out of the hot loop's locals).

    ``in_place`` folds with :class:`projections.fold.Folder`, else event by event
    (:class:`projections.fold.StepFolder`, the fallback). Dead letters at offsets below
    ``letters_from`` are counted and kept but not written again (a previous attempt did)."""

    def __init__(
        self,
        topic: str,
        partition: int,
        state: ClusterState,
        clock: Clock,
        *,
        in_place: bool = True,
        letters_from: int = 0,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.folder: Folder | StepFolder = Folder(state) if in_place else StepFolder(state)
        self.letters_from = letters_from
        #: the offset after the last dead letter written to the sink
        self.letters_to = letters_from
        self.events = 0
        self.rejected = 0
        #: events the reader process checked and packed (:mod:`events._fast.handover`)
        self.prechecked = 0
        self.kept: list[DeadLetter] = []
        self.clock = clock

    @property
    def state(self) -> ClusterState:
        return self.folder.state()

    def fold_batch(
        self, batch: Columns, stop: int, until: datetime | None
    ) -> tuple[list[DeadLetter], int | None]:
        """Decode and fold ``batch``'s records below ``stop``; returns the dead letters and,
        when an event later than ``until`` was met, that record's offset (the replay ends
        there).

        The cyclic garbage collector is paused for the batch (it runs between batches): the
        batch allocates millions of short-lived acyclic objects, which reference counting
        frees anyway, and the collector's passes over them were ~20% of a replay. Nothing
        else runs meanwhile (no await inside), so no other code sees the pause."""
        paused = gc.isenabled()
        gc.disable()
        try:
            return self._fold_batch(batch, stop, until)
        finally:
            if paused:
                gc.enable()

    def _fold_batch(
        self, batch: Columns, stop: int, until: datetime | None
    ) -> tuple[list[DeadLetter], int | None]:
        """Chunk by chunk (:data:`DECODE_CHUNK` records, so that decoded events die young:
        a whole batch of them alive at once would reach the oldest GC generation and set off
        full collections). A chunk the reader packed is unpacked; a raw one is decoded whole
        by the fast path, or record by record (the precise errors, dead letters) when that
        path refuses it."""
        offsets, chunks = batch.offsets, batch.chunks
        n = bisect_left(offsets, stop) if offsets and offsets[-1] >= stop else len(offsets)
        fast, unpack, fold_all = decode_events_fast, unpack_events, self.folder.apply_all
        letters: list[DeadLetter] = []
        for k, i in enumerate(range(0, n, DECODE_CHUNK)):
            j = min(i + DECODE_CHUNK, n)
            chunk = chunks[k] if chunks else batch.values[i:j]
            raw: list[bytes | None] = []
            events: list[ControlEvent] | None
            packed = isinstance(chunk, bytes)
            if isinstance(chunk, bytes):  # checked and packed by the reader
                events = unpack(chunk)
                del events[j - i :]  # the records past ``stop``
            else:
                raw = chunk[: j - i]
                events = None if None in raw else fast(raw)  # type: ignore[arg-type]
            if events is None:
                ended = self._fold_records(batch, i, raw, until, letters)
            else:
                ended = None if until is None else _later(events, until)
                if ended is not None:
                    del events[ended:]
                    ended = offsets[i + ended]
                fold_all(events)
                self.events += len(events)
                if packed:
                    self.prechecked += len(events)
            if ended is not None:
                return letters, ended
        return letters, None

    def _fold_records(
        self,
        batch: Columns,
        first: int,
        values: list[bytes | None],
        until: datetime | None,
        letters: list[DeadLetter],
    ) -> int | None:
        """Decode and fold ``values`` (the records from index ``first`` on) one by one;
        bad records become ``letters``. Returns the offset of the first event later than
        ``until``, if one was met."""
        ended: list[int] = []
        counted = [0]
        rejected = len(letters)
        try:
            self.folder.apply_all(
                self._events(batch, first, values, until, letters, ended, counted)
            )
        finally:
            self.events += counted[0]
            self.rejected += len(letters) - rejected
        return ended[0] if ended else None

    def _events(
        self,
        batch: Columns,
        first: int,
        values: list[bytes | None],
        until: datetime | None,
        letters: list[DeadLetter],
        ended: list[int],
        counted: list[int],
    ) -> Iterator[ControlEvent]:
        """The decoded events of ``values`` in order; bad records become ``letters``."""
        decode = decode_event  # a local: this loop runs once per event
        offsets = batch.offsets
        n = 0
        try:
            for i, value in enumerate(values, first):
                try:
                    if value is None:
                        raise MalformedMessageError("record has no value (a tombstone)")
                    event = decode(value)
                except EventError as exc:
                    letters.append(self._letter(batch, i, value, exc))
                    continue
                if until is not None and event.time > until:
                    ended.append(offsets[i])
                    return
                yield event
                n += 1
        finally:
            counted[0] = n

    def _letter(self, batch: Columns, i: int, value: bytes | None, exc: EventError) -> DeadLetter:
        return make_dead_letter(
            topic=self.topic,
            partition=self.partition,
            offset=batch.offsets[i],
            key=batch.keys[i],
            value=value,
            error=exc,
            now=self.clock(),
            timestamp_ms=batch.timestamps[i],
        )


def _later(events: list[ControlEvent], until: datetime) -> int | None:
    """The index of the first event later than ``until``, if any."""
    for i, event in enumerate(events):
        if event.time > until:
            return i
    return None


async def write_dead_letters(
    letters: list[DeadLetter], run: Run, dlq: DeadLetterSink | None, keep: int
) -> None:
    """Keep and log the first ``keep`` letters of ``run``; write each to ``dlq`` unless a
    previous attempt did (below ``run.letters_from``)."""
    for letter in letters:
        if len(run.kept) < keep:
            run.kept.append(letter)
            log.warning(
                "dead letter %s[%d]@%d: %s: %s",
                letter.origin_topic,
                letter.origin_partition,
                letter.origin_offset,
                letter.error_type,
                letter.error_message,
            )
        if dlq is not None and letter.origin_offset >= run.letters_from:
            await dlq.write(letter)
            run.letters_to = letter.origin_offset + 1
