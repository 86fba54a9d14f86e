"""What the holder of the control log writes while its reader runs, through one plain producer.

Per event (:meth:`FaustProjector.on_control_records`) the holder writes the ``instances`` and
``assignments`` table entries the event changed and a record per changed stream on
``<prefix>.assignments``. Through Faust's API each table entry is a ``send_soon`` into
Faust's producer buffer, drained one awaited ``send`` at a time by a task of its own: at
thousands of entries a second that buffer grew without bound (the tables trailed the topic by
tens of seconds) and its per-record machinery cost more than the fold. Here:

- a table entry is put in the table's store (``table.data``: what Faust's ``__setitem__``
  does after sending) and its changelog record, the same bytes Faust's JSON serializer gives
  (``"key"`` -> value, a tombstone for a deleted key), goes to partition 0 of the table's
  changelog topic;
- an assignment record goes to ``<prefix>.assignments`` as before;
- all through one idempotent ``acks=all`` aiokafka producer, in log order within each
  partition (a changelog never shows an entry older than an entry before it, and a stream's
  records on the topic keep their order);
- :meth:`Outputs.flush` waits for every record of a batch to be acknowledged (an error stops
  the projector: the next holder resyncs) and records the changelog offsets in the store as
  Faust does after a send (RocksDB starts from them after a restart).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.structs import RecordMetadata
from faust.types import TP

from projections.fold.assignments import Update


class Outputs:
    """Table entries and assignment records through ``producer`` (started by the caller)."""

    def __init__(self, producer: AIOKafkaProducer, assignments_topic: str) -> None:
        self.producer = producer
        self.assignments_topic = assignments_topic
        self._pending: list[asyncio.Future[RecordMetadata]] = []
        #: per table written since the last flush: its changelog partition and last send
        self._last: dict[Any, tuple[TP, asyncio.Future[RecordMetadata]]] = {}
        self.records = 0

    async def write(self, table: Any, updates: list[Update]) -> None:
        """Put ``updates`` in ``table``'s store and send their changelog records."""
        if not updates:
            return
        tp = TP(table.changelog_topic.get_topic_name(), 0)
        store = table.data
        future = None
        for update in updates:
            if update.value is None:
                store.pop(update.key, None)
                value = None
            else:
                store[update.key] = update.value
                value = orjson.dumps(update.value)
            future = await self.producer.send(
                tp.topic, value, key=orjson.dumps(update.key), partition=0
            )
            self._pending.append(future)
        assert future is not None
        self._last[table] = (tp, future)
        self.records += len(updates)

    async def publish(self, updates: list[Update]) -> None:
        """One record per update on ``<prefix>.assignments`` (a tombstone for None)."""
        for update in updates:
            value = None if update.value is None else orjson.dumps(update.value)
            # keyed by stream id: aiokafka's partitioner, as Faust's send used
            future = await self.producer.send(
                self.assignments_topic, value, key=update.key.encode()
            )
            self._pending.append(future)
        self.records += len(updates)

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged (raises the first error),
        then record each table's changelog offset in its store."""
        pending, self._pending = self._pending, []
        last, self._last = self._last, {}
        if pending:
            await asyncio.gather(*pending)
        for table, (tp, future) in last.items():
            table.data.set_persisted_offset(tp, future.result().offset)


__all__ = ["Outputs"]
