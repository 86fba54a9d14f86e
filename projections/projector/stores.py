"""The projector's RocksDB table store: Faust's own (on ``rocksdict``), writable outside a
stream iteration.

Faust's RocksDB store puts a key in the database of the partition of the event being
processed, and refuses a write when there is none (faust-streaming/faust#261; the memory
store has no such limit). A takeover writes the ``instances`` and
``assignments`` tables before any record is processed (``projections.projector.takeover``),
as the memory store allows; those tables have one partition and ``use_partitioner=True``
(their changelog records go to partition 0 by Faust's partitioner), so such a write goes to
partition 0 here too. Every other write and read is Faust's.

Registered under the URL scheme ``streamplane-rocksdb`` through Faust's plug-in namespace
(``[project.entry-points."faust.stores"]`` in ``pyproject.toml``).
"""

from __future__ import annotations

from faust.stores import rocksdb
from faust.streams import current_event

SCHEME = "streamplane-rocksdb"


class RocksDBStore(rocksdb.Store):
    """Faust's RocksDB store; a write outside a stream iteration goes to partition 0."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        if current_event() is not None:
            return super()._set(key, value)
        if self.table.partitions not in (None, 1) or not self.table.use_partitioner:
            raise TypeError(f"table {self.table.name}: written outside a stream iteration")
        self._key_index[key] = 0
        self._db_for_partition(0).put(key, value)


__all__ = ["SCHEME", "RocksDBStore"]
