"""Transitions of the instances: registration, liveness, quarantine, drains, capacity, samples."""

from __future__ import annotations

from events import control as ev
from projections.fold.state import GONE_STATUSES, EnhancedInstance, FindingKind, InstanceStatus
from projections.fold.transitions.common import Rejected, instance_of
from projections.fold.transitions.draft import Draft

#: earlier incarnations remembered per server, so their late heartbeats are known as stale
PAST_KEPT = 8


def instance_registered(d: Draft, e: ev.InstanceRegistered) -> None:
    old = d.instances.get(e.server_id)
    if old is not None and old.incarnation == e.incarnation:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.server_id!r}/{e.incarnation!r} already registered"
        )
    if old is not None and old.status not in GONE_STATUSES:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r}: incarnation {old.incarnation!r} is {old.status}; "
            "fail or deregister it first",
        )
    if old is not None and d.held.get(e.server_id):
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r}: streams of incarnation {old.incarnation!r} not reassigned yet",
        )
    inst = EnhancedInstance(
        server_id=e.server_id,
        incarnation=e.incarnation,
        ip=str(e.ip),
        port=e.port,
        max_streams=e.max_streams,
        zone=e.zone,
        tags=e.tags,
        registered_at=e.time,
        last_heartbeat=e.time,
        failure_count=old.failure_count if old else 0,
        recovery_attempts=old.recovery_attempts if old else 0,
        last_failure_at=old.last_failure_at if old else None,
        draining=old.draining if old else False,
        past_incarnations=(*old.past_incarnations, old.incarnation)[-PAST_KEPT:] if old else (),
    )
    d.put_instance(inst)


def instance_suspected(d: Draft, e: ev.InstanceSuspected) -> None:
    inst = instance_of(d, e.server_id, e.incarnation)
    if inst.status is not InstanceStatus.ACTIVE:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}, not active"
        )
    d.update_instance(inst, status=InstanceStatus.SUSPECTED, last_heartbeat=e.last_heartbeat)


def instance_recovered(d: Draft, e: ev.InstanceRecovered) -> None:
    inst = instance_of(d, e.server_id, e.incarnation)
    if inst.status not in (InstanceStatus.SUSPECTED, InstanceStatus.QUARANTINED):
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}")
    attempts = inst.recovery_attempts + (1 if inst.status is InstanceStatus.QUARANTINED else 0)
    d.update_instance(
        inst,
        status=InstanceStatus.ACTIVE,
        last_heartbeat=e.time,
        recovery_attempts=attempts,
        quarantined_until=None,
    )


def instance_gone(d: Draft, e: ev.InstanceFailed | ev.InstanceDeregistered) -> None:
    """Failed or left: it holds nothing any more; its streams are reassigned by later events."""
    inst = instance_of(d, e.server_id, e.incarnation)
    if inst.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is already {inst.status}")
    failed = isinstance(e, ev.InstanceFailed)
    d.update_instance(
        inst,
        status=InstanceStatus.FAILED if failed else InstanceStatus.LEFT,
        failure_count=inst.failure_count + (1 if failed else 0),
        last_failure_at=e.time if failed else inst.last_failure_at,
    )


def instance_quarantined(d: Draft, e: ev.InstanceQuarantined) -> None:
    inst = instance_of(d, e.server_id)
    if inst.status in GONE_STATUSES:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} is {inst.status}")
    if d.held.get(e.server_id):
        raise Rejected(FindingKind.INVALID_TRANSITION, f"{e.server_id!r} still holds streams")
    d.update_instance(inst, status=InstanceStatus.QUARANTINED, quarantined_until=e.until)


def instance_draining(d: Draft, e: ev.InstanceDraining) -> None:
    d.update_instance(instance_of(d, e.server_id), draining=True)


def instance_undrained(d: Draft, e: ev.InstanceUndrained) -> None:
    d.update_instance(instance_of(d, e.server_id), draining=False, drained_at=None)


def instance_drained(d: Draft, e: ev.InstanceDrained) -> None:
    inst = instance_of(d, e.server_id)
    if not inst.draining or inst.load:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r} is not an empty draining instance (load {inst.load})",
        )
    d.update_instance(inst, drained_at=e.time)


def instance_capacity_changed(d: Draft, e: ev.InstanceCapacityChanged) -> None:
    inst = instance_of(d, e.server_id)
    if e.max_streams < inst.load:
        raise Rejected(
            FindingKind.CAPACITY_EXCEEDED,
            f"{e.server_id!r} holds {inst.load}; capacity {e.max_streams} is too small",
        )
    d.update_instance(inst, max_streams=e.max_streams)


def performance_sampled(d: Draft, e: ev.PerformanceSampled) -> None:
    d.update_instance(instance_of(d, e.server_id), performance_metrics=e.metrics, metrics_at=e.time)
