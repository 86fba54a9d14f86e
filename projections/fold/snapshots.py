"""Snapshots of the folded state, so takeover and replay need only the log's tail.

A :class:`Snapshot` is ``fold(log[:log_offset])`` in canonical JSON form
(:mod:`projections.fold.canonical`) plus where it ends: ``seq``/``epoch`` of the state and
``log_offset``, the next control-log offset after the events it covers. Resuming is
``replay(..., from_state=restore_state(s), from_offset=s.log_offset)``, and
``fold_from(restore_state(s), tail) == fold(whole log)``.

Wire form (one record of ``<prefix>.snapshots``, compacted, key ``cluster``): the snapshot's
JSON, zlib-compressed (a 20k-stream state is ~10 MB of JSON, ~1.3 MB compressed). Decoding is
strict: a snapshot whose ``digest`` does not match its state, whose ``format`` this build does
not know, or whose state this build cannot rebuild byte for byte raises
:class:`InvalidSnapshotError`; the caller ignores it and replays from offset 0.

This module is the pure part (``make_snapshot``, ``encode_snapshot``, ``decode_snapshot``,
``restore_state``); :class:`projections.io.snapshot_store.SnapshotStore` is the aiokafka adapter.
"""

from __future__ import annotations

import hashlib
import zlib
from datetime import datetime
from typing import Any, ClassVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.base import UtcDateTime
from projections.errors import (
    InvalidSnapshotError,
    UnsupportedSnapshotFormatError,
)
from projections.fold.canonical import (
    DUMPS_OPTIONS,
    JsonMemo,
    state_digest,
    state_from_jsonable,
)
from projections.fold.canonical import state_to_jsonable as _to_jsonable
from projections.fold.state import ClusterState

#: the snapshot format this build writes and reads; bump it when the layout changes
SNAPSHOT_FORMAT = 1
#: the record key of every snapshot (the topic is compacted: the newest one survives)
SNAPSHOT_KEY = b"cluster"


class Snapshot(BaseModel):
    """The folded state at ``seq`` and where in the control log it ends."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    FORMAT: ClassVar[int] = SNAPSHOT_FORMAT

    format: int = SNAPSHOT_FORMAT
    seq: int = Field(ge=0)
    epoch: int = Field(ge=0)
    #: the next control-log offset after the covered events: resume the replay there
    log_offset: int = Field(ge=0)
    #: SHA-256 hex of the canonical state bytes (== ``canonical.state_digest(state)``)
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    taken_at: UtcDateTime
    taken_by: str | None = Field(default=None, max_length=256)
    #: ``canonical.state_to_jsonable(state)``
    state: dict[str, Any]


def _digest(data: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(data, option=DUMPS_OPTIONS)).hexdigest()


def make_snapshot(
    state: ClusterState,
    *,
    log_offset: int,
    taken_at: datetime,
    taken_by: str | None = None,
    memo: JsonMemo | None = None,
) -> Snapshot:
    """The snapshot of ``state``, which must be ``fold(log[:log_offset])``. A ``memo`` kept
    from one snapshot to the next spares converting the records that did not change."""
    data = _to_jsonable(state, memo)
    return Snapshot(
        seq=state.seq,
        epoch=state.epoch,
        log_offset=log_offset,
        digest=_digest(data),  # same bytes as state_digest(state), serialised once
        taken_at=taken_at,
        taken_by=taken_by,
        state=data,
    )


def encode_snapshot(snapshot: Snapshot, *, level: int = 1) -> bytes:
    """The record value: the snapshot's JSON, zlib-compressed at ``level`` (1 is fast and
    already shrinks a state ~8x)."""
    body = snapshot.model_dump(mode="json", exclude={"state"})
    body["state"] = snapshot.state  # JSON data already: pydantic need not walk it again
    return zlib.compress(orjson.dumps(body), level)


def decode_snapshot(raw: bytes) -> Snapshot:
    """Decode and check a record value: format known, fields valid, digest matches the
    state, ``seq``/``epoch`` match the state's. Raises :class:`InvalidSnapshotError`."""
    try:
        obj = orjson.loads(zlib.decompress(raw))
    except (zlib.error, orjson.JSONDecodeError) as exc:
        raise InvalidSnapshotError(f"snapshot is not zlib-compressed JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidSnapshotError(f"snapshot must be a JSON object, got {type(obj).__name__}")
    fmt = obj.get("format")
    if fmt != SNAPSHOT_FORMAT:
        raise UnsupportedSnapshotFormatError(
            f"snapshot format {fmt!r} is not the one this build reads ({SNAPSHOT_FORMAT})"
        )
    try:
        snapshot = Snapshot.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidSnapshotError(f"snapshot field {where}: {err['msg']}") from exc
    actual = _digest(snapshot.state)
    if actual != snapshot.digest:
        raise InvalidSnapshotError(
            f"snapshot at seq {snapshot.seq}: digest {snapshot.digest[:12]}... does not match "
            f"its state ({actual[:12]}...)"
        )
    for name in ("seq", "epoch"):
        if snapshot.state.get(name, 0) != getattr(snapshot, name):
            raise InvalidSnapshotError(
                f"snapshot {name} {getattr(snapshot, name)} differs from its state's "
                f"{snapshot.state.get(name)!r}"
            )
    return snapshot


def restore_state(snapshot: Snapshot) -> ClusterState:
    """Rebuild the state and check that it digests to ``snapshot.digest`` again: a build whose
    state classes changed (a field added, renamed) cannot continue from an old snapshot
    faithfully, so it must refuse it (:class:`InvalidSnapshotError`) and replay the log."""
    try:
        state = state_from_jsonable(snapshot.state)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise InvalidSnapshotError(
            f"snapshot at seq {snapshot.seq} cannot be rebuilt by this build: {exc}"
        ) from exc
    if state_digest(state) != snapshot.digest:
        raise InvalidSnapshotError(
            f"snapshot at seq {snapshot.seq}: the rebuilt state differs from the one "
            "written (state classes changed since); replay the log instead"
        )
    return state


__all__ = [
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_KEY",
    "InvalidSnapshotError",
    "Snapshot",
    "UnsupportedSnapshotFormatError",
    "decode_snapshot",
    "encode_snapshot",
    "make_snapshot",
    "restore_state",
]
