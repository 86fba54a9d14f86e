"""Synthetic history: what happens to instances (register, fail or leave and evacuate,
suspect, recover, quarantine, drain, resize, sample, enroll and revoke keys). Each function
emits one legal event (a failure its reassignments too) through the :class:`Generator`, or
returns False when nothing fits the current state."""

from __future__ import annotations

import base64
from datetime import timedelta
from ipaddress import IPv4Address

from events import control as ev
from events.base import ControlEvent
from events.enrollment import key_id
from projections.fold.state import GONE_STATUSES, InstanceStatus
from projections.testing.synthetic.generator import Generator
from projections.testing.synthetic.streams import migrate_stream


def register_instance(g: Generator) -> bool:
    server_id = g.gone.choice(g.rng) if g.rng.random() < 0.9 else None
    if server_id is None or g.state.held.get(server_id):
        g.serial += 1
        server_id = f"w{g.serial}"
    seq = g.state.seq + 1
    g.emit(
        ev.InstanceRegistered,
        server_id=server_id,
        incarnation=f"{server_id}.{seq}",
        ip=IPv4Address(0x0A000000 + g.rng.randrange(1, 1 << 16)),
        port=g.rng.randint(1024, 65535),
        max_streams=g.rng.randint(g.capacity_mean // 2, g.capacity_mean * 3 // 2),
        zone=f"z{g.rng.randint(1, 3)}",
    )
    return True


def remove_instance(g: Generator) -> bool:
    """Fail or deregister a live instance, then move its streams off it at once."""
    if len(g.live) < 2:
        return False
    inst = g.live_instance()
    if inst is None:
        return False
    failed = g.rng.random() < 0.6
    cls: type[ControlEvent] = ev.InstanceFailed if failed else ev.InstanceDeregistered
    reason = ev.Reasons.INSTANCE_FAILED if failed else ev.Reasons.INSTANCE_LEFT
    g.emit(cls, server_id=inst.server_id, incarnation=inst.incarnation, reason=reason)
    _evacuate(g, inst.server_id, reason)
    return True


def _evacuate(g: Generator, server_id: str, reason: str) -> None:
    held = g.state.held.get(server_id)
    for stream_id in sorted(held) if held is not None else ():
        m = g.state.streams[stream_id].migration_state
        if m is not None:
            g.emit(
                ev.MigrationAborted,
                stream_id=stream_id,
                migration_id=m.migration_id,
                reason=reason,
            )
            if m.to_server == server_id:
                continue  # the (live) source keeps it
        stream = g.state.streams[stream_id]
        target = g.target(stream.weight, exclude=server_id)
        if target is not None:
            g.emit(
                ev.StreamAssigned,
                stream_id=stream_id,
                server_id=target.server_id,
                incarnation=target.incarnation,
                reason=reason,
            )
        else:
            g.emit(
                ev.StreamUnassigned,
                stream_id=stream_id,
                server_id=server_id,
                reason=ev.Reasons.NO_CAPACITY,
            )
            # and, in the same orchestrator cycle, that it waits for capacity
            g.emit(
                ev.StreamWaiting,
                stream_id=stream_id,
                reason=ev.Reasons.NO_CAPACITY,
                right_after=True,
            )


def suspect(g: Generator) -> bool:
    inst = g.live_instance(InstanceStatus.ACTIVE)
    if inst is None:
        return False
    g.emit(
        ev.InstanceSuspected,
        server_id=inst.server_id,
        incarnation=inst.incarnation,
        last_heartbeat=inst.last_heartbeat,
    )
    return True


def recover(g: Generator) -> bool:
    inst = g.live_instance(InstanceStatus.SUSPECTED, InstanceStatus.QUARANTINED)
    if inst is None:
        return False
    g.emit(ev.InstanceRecovered, server_id=inst.server_id, incarnation=inst.incarnation)
    return True


def quarantine(g: Generator) -> bool:
    inst = g.live_instance(InstanceStatus.ACTIVE, InstanceStatus.SUSPECTED)
    if inst is None or g.state.held.get(inst.server_id):
        return False
    until = g.now + timedelta(minutes=g.rng.randint(1, 30))
    g.emit(ev.InstanceQuarantined, server_id=inst.server_id, until=until)
    return True


def drain(g: Generator) -> bool:
    inst = g.live_instance(InstanceStatus.ACTIVE)
    if inst is None or inst.draining or len(g.draining) * 4 >= len(g.live):
        return False
    g.emit(ev.InstanceDraining, server_id=inst.server_id, reason=ev.Reasons.OPERATOR)
    return True


def drain_progress(g: Generator) -> bool:
    """Move one stream off a draining instance; when it is empty, report or undrain it."""
    server_id = g.draining.choice(g.rng)
    if server_id is None:
        return False
    inst = g.state.instances[server_id]
    if inst.status in GONE_STATUSES:
        g.emit(ev.InstanceUndrained, server_id=server_id, reason=ev.Reasons.OPERATOR)
        return True
    if inst.load == 0:
        g.emit(ev.InstanceDrained, server_id=server_id)
        if g.rng.random() < 0.5:
            g.emit(ev.InstanceUndrained, server_id=server_id, reason=ev.Reasons.OPERATOR)
        else:
            g.emit(
                ev.InstanceDeregistered,
                server_id=server_id,
                incarnation=inst.incarnation,
                reason=ev.Reasons.DRAIN,
            )
        return True
    held = g.state.held.get(server_id)
    for stream_id in sorted(held) if held is not None else ():
        if g.stream_bucket.get(stream_id) == "running":
            return migrate_stream(g, stream_id, ev.Reasons.DRAIN)
    return False


def resize(g: Generator) -> bool:
    inst = g.live_instance()
    if inst is None:
        return False
    wanted = g.rng.randint(g.capacity_mean // 2, g.capacity_mean * 3 // 2)
    g.emit(
        ev.InstanceCapacityChanged,
        server_id=inst.server_id,
        max_streams=max(inst.load, wanted),
        reason=ev.Reasons.OPERATOR,
    )
    return True


def sample(g: Generator) -> bool:
    inst = g.live_instance()
    if inst is None:
        return False
    metrics = g.metrics[int(g.rng.random() * len(g.metrics))]
    g.emit(ev.PerformanceSampled, server_id=inst.server_id, metrics=metrics)
    return True


def enroll(g: Generator) -> bool:
    """Enroll a key for a known or a new server id (a known one: a key rotation)."""
    inst = g.live_instance() if g.rng.random() < 0.7 else None
    server_id = inst.server_id if inst is not None else f"w{g.serial + 1}"
    public_key = base64.b64encode(g.rng.randbytes(32)).decode("ascii")
    g.emit(
        ev.InstanceEnrolled,
        server_id=server_id,
        public_key=public_key,
        key_id=key_id(public_key),
        enrolled_by="streamplane/cli",
    )
    return True


def revoke(g: Generator) -> bool:
    """Revoke an enrolled key; a live instance under that id is failed and evacuated."""
    live = sorted(k for k, e in g.state.enrolled.items() if e.revoked_at is None)
    if not live:
        return False
    record = g.state.enrolled[live[int(g.rng.random() * len(live))]]
    g.emit(ev.InstanceRevoked, server_id=record.server_id, key_id=record.key_id)
    inst = g.state.instances.get(record.server_id)
    if inst is not None and inst.status not in GONE_STATUSES:
        reason = ev.Reasons.INSTANCE_REVOKED
        g.emit(
            ev.InstanceFailed, server_id=inst.server_id, incarnation=inst.incarnation, reason=reason
        )
        _evacuate(g, inst.server_id, reason)
    return True
