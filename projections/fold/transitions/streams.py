"""Transitions of the streams: registration, assignment, waiting, start, failure, removal."""

from __future__ import annotations

from events import control as ev
from projections.fold.state import AssignmentStatus, FindingKind, InstanceStatus, StreamAssignment
from projections.fold.transitions.common import (
    Rejected,
    check_room,
    hold,
    instance_of,
    owner_alive,
    release_all,
    stream_of,
)
from projections.fold.transitions.draft import Draft


def stream_registered(d: Draft, e: ev.StreamRegistered) -> None:
    if e.stream_id in d.streams:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"stream {e.stream_id!r} already registered")
    stream = StreamAssignment(
        stream_id=e.stream_id,
        weight=e.weight,
        priority=e.priority,
        zone=e.zone,
        anti_affinity=e.anti_affinity,
        params=tuple(sorted(e.params.items())),
        registered_at=e.time,
    )
    d.put_stream(stream)


def stream_deregistered(d: Draft, e: ev.StreamDeregistered) -> None:
    stream = stream_of(d, e.stream_id)
    release_all(d, stream)
    d.drop_stream(e.stream_id)


def stream_assigned(d: Draft, e: ev.StreamAssigned) -> None:
    stream = stream_of(d, e.stream_id)
    target = instance_of(d, e.server_id, e.incarnation)
    if target.status is not InstanceStatus.ACTIVE:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {target.status}")
    if stream.migration_state is not None:
        raise Rejected(FindingKind.TWO_OWNERS, f"{e.stream_id!r} is migrating; abort it first")
    if owner_alive(d, stream):
        raise Rejected(
            FindingKind.TWO_OWNERS,
            f"{e.stream_id!r} is owned by live {stream.server_id!r}; migrate it instead",
        )
    # Check before writing (every transition does). The dead owner's release below frees the
    # stream's weight on the target first when it is the same server (a new incarnation):
    # count that in, as ``hold`` will see it.
    load = target.load
    if stream.server_id == e.server_id:
        load = max(0, load - stream.weight)
    check_room(target, load, stream)
    release_all(d, stream)
    hold(d, e.server_id, stream, owner=True)
    d.update_stream(
        stream,
        server_id=e.server_id,
        incarnation=e.incarnation,
        assigned_at=e.time,
        status=AssignmentStatus.ASSIGNED,
    )


def stream_unassigned(d: Draft, e: ev.StreamUnassigned) -> None:
    stream = stream_of(d, e.stream_id)
    release_all(d, stream)
    d.update_stream(
        stream,
        server_id=None,
        incarnation=None,
        assigned_at=None,
        migration_state=None,
        status=AssignmentStatus.UNASSIGNED,
    )


def stream_waiting(d: Draft, e: ev.StreamWaiting) -> None:
    """The log says why an ``unassigned`` stream has no owner (docs/contract.md): nothing
    changes, as the state already holds it as waiting (``unplaced``); a stream with an owner,
    or parked, cannot be waiting, and the event is refused."""
    stream = stream_of(d, e.stream_id)
    if stream.status is not AssignmentStatus.UNASSIGNED:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is {stream.status}, not waiting"
        )


def stream_started(d: Draft, e: ev.StreamStarted) -> None:
    stream = stream_of(d, e.stream_id)
    if stream.server_id != e.server_id or stream.incarnation != e.incarnation:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.stream_id!r} is owned by {stream.server_id!r}, "
            f"not {e.server_id!r}/{e.incarnation!r}",
        )
    if stream.status is not AssignmentStatus.ASSIGNED:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is {stream.status}")
    d.update_instance(instance_of(d, e.server_id), last_heartbeat=e.time)
    d.update_stream(stream, status=AssignmentStatus.RUNNING)


def stream_failed(d: Draft, e: ev.StreamFailed) -> None:
    """A start failed on its owner: the owner lets go; ``parked`` stops all attempts."""
    stream = stream_of(d, e.stream_id)
    if stream.server_id != e.server_id:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is not owned by {e.server_id!r}"
        )
    if stream.migration_state is not None:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.stream_id!r} is migrating; abort it first"
        )
    release_all(d, stream)
    failed_on = (
        stream.failed_on if e.server_id in stream.failed_on else (*stream.failed_on, e.server_id)
    )
    d.update_stream(
        stream,
        server_id=None,
        incarnation=None,
        assigned_at=None,
        status=AssignmentStatus.FAILED if e.parked else AssignmentStatus.UNASSIGNED,
        failure_count=stream.failure_count + 1,
        failed_on=failed_on,
        last_error=e.error,
    )
