"""Consistency checks (the seed's ConsistencyChecker) as pure functions over state + heartbeats.

Kinds: ``orphaned`` (owner gone), ``duplicated`` (reported running by two live instances),
``counter_mismatch`` (an instance's counters disagree with the streams it holds),
``worker_mismatch`` (a worker runs a set other than its desired set). Repairs are events:
orphans are placed again (``StreamAssigned(reason=orphaned)``), workers that disagree get
their desired set re-sent (they reconcile level-triggered), and every repair is logged as a
``ConsistencyDivergenceRepaired``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from control_plane.decide.context import Ctx
from control_plane.decide.liveness import LivenessView
from control_plane.decide.placement import place
from events import control as ev
from events.heartbeat import StreamRunState
from projections.fold.state import GONE_STATUSES, ClusterState, InstanceStatus


class Divergence(NamedTuple):
    kind: str
    stream_id: str | None
    server_id: str | None
    detail: str


def detect_orphaned_streams(state: ClusterState) -> list[Divergence]:
    out = []
    for s in state.streams.values():
        if s.server_id is None:
            continue
        owner = state.instances.get(s.server_id)
        if owner is None or owner.status in GONE_STATUSES or owner.incarnation != s.incarnation:
            out.append(Divergence("orphaned", s.stream_id, s.server_id, "owner is gone"))
    return sorted(out)


def counter_mismatches(state: ClusterState) -> list[Divergence]:
    out = []
    for inst in state.instances.values():
        held = state.held.get(inst.server_id, ())
        weight = sum(state.streams[s].weight for s in held)
        owned = sum(1 for s in held if state.streams[s].server_id == inst.server_id)
        if weight != inst.load or owned != inst.current_streams:
            detail = f"load {inst.load} vs {weight}, streams {inst.current_streams} vs {owned}"
            out.append(Divergence("counter_mismatch", None, inst.server_id, detail))
    return sorted(out)


def worker_mismatches(state: ClusterState, liveness: LivenessView) -> list[Divergence]:
    """Live workers whose last report differs from their desired set."""
    out = []
    running_on: dict[str, list[str]] = {}
    for server_id, sighting in sorted(liveness.last.items()):
        inst = state.instances.get(server_id)
        hb = sighting.heartbeat
        if inst is None or inst.status is not InstanceStatus.ACTIVE:
            continue
        if hb.incarnation != inst.incarnation:
            continue
        reported = {r.stream_id for r in hb.streams if r.state is not StreamRunState.FAILED}
        desired = set(state.desired_streams(server_id))
        for sid in reported:
            running_on.setdefault(sid, []).append(server_id)
        extra, missing = sorted(reported - desired), sorted(desired - reported)
        if extra or missing:
            detail = f"runs {len(extra)} undesired {extra[:5]}, lacks {len(missing)} {missing[:5]}"
            out.append(Divergence("worker_mismatch", None, server_id, detail))
    for sid, servers in sorted(running_on.items()):
        s = state.streams.get(sid)
        target = s.migration_state.to_server if s and s.migration_state else None
        others = [x for x in servers if x != target]
        if len(others) > 1:
            out.append(Divergence("duplicated", sid, None, f"running on {sorted(others)}"))
    return out


def verify_system_consistency(state: ClusterState, liveness: LivenessView) -> list[Divergence]:
    """Everything the checker can see from the state and the latest heartbeats."""
    return (
        detect_orphaned_streams(state)
        + counter_mismatches(state)
        + worker_mismatches(state, liveness)
    )


def run_check(ctx: Ctx, liveness: LivenessView, *, repair: bool, causation: str | None) -> int:
    """Emit a ``ConsistencyDivergenceFound`` per divergence, and repair when asked."""
    check_id = ctx.new_id()
    found = verify_system_consistency(ctx.state, liveness)
    for d in found:
        emit_found(ctx, d, check_id=check_id, causation=causation)
    if not repair:
        return len(found)
    orphans = [d.stream_id for d in found if d.kind == "orphaned" and d.stream_id]
    place(ctx, orphans, ev.Reasons.ORPHANED)
    for d in found:
        action = _repair_action(ctx, d)
        emit_repaired(ctx, d, action, check_id=check_id, causation=causation)
    return len(found)


def emit_found(ctx: Ctx, d: Any, *, check_id: str, causation: str | None) -> None:
    """``ConsistencyDivergenceFound`` of divergence ``d`` (anything with ``kind``,
    ``stream_id``, ``server_id`` and ``detail``)."""
    ctx.emit(
        ev.ConsistencyDivergenceFound,
        causation=causation,
        check_id=check_id,
        kind=d.kind,
        stream_id=d.stream_id,
        server_id=d.server_id,
        detail=d.detail,
    )


def emit_repaired(ctx: Ctx, d: Any, action: str, *, check_id: str, causation: str | None) -> None:
    """``ConsistencyDivergenceRepaired`` of divergence ``d``: ``action`` says what was done."""
    ctx.emit(
        ev.ConsistencyDivergenceRepaired,
        causation=causation,
        check_id=check_id,
        kind=d.kind,
        action=action,
        stream_id=d.stream_id,
        server_id=d.server_id,
    )


def _repair_action(ctx: Ctx, d: Divergence) -> str:
    if d.kind == "orphaned":
        s = ctx.state.streams.get(d.stream_id or "")
        where = s.server_id if s else None
        return f"reassigned to {where}" if where else "unassigned, waiting for capacity"
    if d.kind == "worker_mismatch" and d.server_id:
        ctx.republish.add(d.server_id)
        return "desired set re-sent; the worker reconciles"
    if d.kind == "duplicated":
        # each extra runner is also a worker_mismatch, whose desired set is re-sent
        return "non-owners told to stop via their desired sets"
    return "state is a fold of the log: rebuild the projection from the log"
