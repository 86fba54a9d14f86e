"""What every transition shares: :class:`Rejected`, the lookups that reject, and the holds.

**Every transition checks before it writes**: it raises :class:`Rejected` before its first
write to the draft, never after. The draft (:mod:`projections.fold.transitions.draft`) writes
in place and cannot take a write back; the driver (:mod:`projections.fold.driver`) and
``tests/unit/test_fold_in_place.py`` hold every transition to the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import immutables

from projections.fold.state import GONE_STATUSES, FindingKind
from projections.fold.transitions.draft import Draft, InstanceRecord, StreamRecord

#: a transition: reads the draft, checks, then writes it (or raises Rejected, having not)
Transition = Callable[[Draft, Any], None]
EMPTY: immutables.Map[str, bool] = immutables.Map()


class Rejected(Exception):
    """The event would break an invariant; it has no effect."""

    def __init__(self, kind: FindingKind, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def instance_of(d: Draft, server_id: str, incarnation: str | None = None) -> InstanceRecord:
    """The instance ``server_id`` (of ``incarnation``, if given), or the event is rejected."""
    inst = d.instances.get(server_id)
    if inst is None:
        raise Rejected(FindingKind.UNKNOWN_INSTANCE, f"unknown instance {server_id!r}")
    if incarnation is not None and inst.incarnation != incarnation:
        raise Rejected(
            FindingKind.UNKNOWN_INSTANCE,
            f"{server_id!r} is incarnation {inst.incarnation!r}, not {incarnation!r}",
        )
    return inst


def stream_of(d: Draft, stream_id: str) -> StreamRecord:
    """The stream ``stream_id``, or the event is rejected."""
    stream = d.streams.get(stream_id)
    if stream is None:
        raise Rejected(FindingKind.UNKNOWN_STREAM, f"unknown stream {stream_id!r}")
    return stream


def check_room(inst: InstanceRecord, load: int, stream: StreamRecord) -> None:
    """``inst``, holding ``load``, has room for ``stream``, or the transition is rejected."""
    if load + stream.weight > inst.max_streams:
        raise Rejected(
            FindingKind.CAPACITY_EXCEEDED,
            f"{inst.server_id!r} holds {load}/{inst.max_streams}; "
            f"{stream.stream_id!r} weighs {stream.weight}",
        )


def hold(d: Draft, server_id: str, stream: StreamRecord, *, owner: bool) -> None:
    """``server_id`` takes ``stream`` on (as owner or as a migration target): check capacity."""
    inst = instance_of(d, server_id)
    check_room(inst, inst.load, stream)
    d.update_instance(
        inst,
        load=inst.load + stream.weight,
        current_streams=inst.current_streams + (1 if owner else 0),
    )
    d.put_held(server_id, d.held.get(server_id, EMPTY).set(stream.stream_id, True))


def release(d: Draft, server_id: str, stream: StreamRecord, *, owner: bool) -> None:
    """``server_id`` lets go of ``stream`` (nothing to do if it is gone)."""
    inst = d.instances.get(server_id)
    if inst is None:
        return
    d.update_instance(
        inst,
        load=max(0, inst.load - stream.weight),
        current_streams=max(0, inst.current_streams - (1 if owner else 0)),
    )
    held = d.held.get(server_id)
    if held is not None and stream.stream_id in held:
        d.put_held(server_id, held.delete(stream.stream_id))


def release_all(d: Draft, stream: StreamRecord) -> None:
    """Drop the owner's and any migration target's hold on ``stream``."""
    if stream.server_id is not None:
        release(d, stream.server_id, stream, owner=True)
    if stream.migration_state is not None:
        release(d, stream.migration_state.to_server, stream, owner=False)


def owner_alive(d: Draft, stream: StreamRecord) -> bool:
    """Whether ``stream``'s owner is the live incarnation that was given it."""
    if stream.server_id is None:
        return False
    owner = d.instances.get(stream.server_id)
    return (
        owner is not None
        and owner.incarnation == stream.incarnation
        and owner.status not in GONE_STATUSES
    )
