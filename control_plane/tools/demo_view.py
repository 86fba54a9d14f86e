"""What ``streamplane demo`` prints: a pure rendering of the folded state.

No I/O and no clock: the caller passes the state (a fold of the control log), the latest
heartbeat per server, the recent events it has seen and ``now``; :func:`render` returns the
lines. The same lines serve the refreshing terminal view and the plain snapshots printed
when stdout is not a terminal (CI logs), and the final snapshot ends with one ``summary:``
line that scripts and tests can parse.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from events import control as ev
from events.base import ControlEvent
from events.heartbeat import Heartbeat, StreamRunState
from projections.fold.health import system_health
from projections.fold.state import AssignmentStatus, ClusterState, EnhancedInstance, InstanceStatus

BAR_WIDTH = 20
#: events about instances, leadership and the cluster as a whole: shown in their own pane
#: so that a failover stays visible while stream events scroll by
CLUSTER_EVENTS: tuple[type[ControlEvent], ...] = (
    ev.LeaderElected,
    ev.InstanceRegistered,
    ev.InstanceSuspected,
    ev.InstanceRecovered,
    ev.InstanceFailed,
    ev.InstanceQuarantined,
    ev.InstanceDeregistered,
    ev.InstanceDraining,
    ev.InstanceDrained,
    ev.InstanceUndrained,
    ev.InstanceCapacityChanged,
    ev.MaintenanceModeEntered,
    ev.MaintenanceModeLeft,
    ev.RebalancePlanned,
    ev.RebalanceCompleted,
)
#: too frequent to be interesting in a live view
QUIET_EVENTS: tuple[type[ControlEvent], ...] = (ev.PerformanceSampled, ev.CommandCompleted)


@dataclass(slots=True)
class RecentEvents:
    """The last few cluster events and stream events (bounded)."""

    cluster: deque[ControlEvent] = field(default_factory=lambda: deque(maxlen=8))
    streams: deque[ControlEvent] = field(default_factory=lambda: deque(maxlen=8))
    counts: dict[str, int] = field(default_factory=dict)

    def record(self, events: Iterable[ControlEvent]) -> None:
        for e in events:
            name = type(e).__name__
            self.counts[name] = self.counts.get(name, 0) + 1
            if isinstance(e, CLUSTER_EVENTS):
                self.cluster.append(e)
            elif not isinstance(e, QUIET_EVENTS):
                self.streams.append(e)


@dataclass(frozen=True, slots=True)
class Header:
    """Facts about the demo run itself (not in the log)."""

    prefix: str
    elapsed_s: float
    log_dir: str
    notes: tuple[str, ...] = ()
    keys: bool = False


def describe(e: ControlEvent) -> str:
    """One line for an event: seq, time, type, subject, the interesting fields."""
    parts = [f"seq {e.seq:>5}", e.time.strftime("%H:%M:%S"), type(e).__name__]
    if e.subject:
        parts.append(e.subject)
    for name in ("leader_id", "server_id", "from_server", "to_server", "error", "detail"):
        value = getattr(e, name, None)
        if value and value != e.subject:
            parts.append(f"{name}={value}")
    if isinstance(e, ev.RebalancePlanned):
        parts.append(f"moves={len(e.moves)} dry_run={e.dry_run}")
    reason = getattr(e, "reason", None)
    if reason:
        parts.append(f"({reason})")
    return " ".join(parts)


def load_bar(inst: EnhancedInstance, width: int = BAR_WIDTH) -> str:
    """``[#######.....]``: held weight over capacity."""
    if inst.max_streams <= 0:
        return "[" + "." * width + "]"
    filled = min(width, round(width * inst.load / inst.max_streams))
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _instance_line(inst: EnhancedInstance, hb: Heartbeat | None, now: datetime) -> str:
    status = inst.status.value + (" draining" if inst.draining else "")
    line = (
        f"  {inst.server_id:<12} {status:<12} {load_bar(inst)} "
        f"{inst.current_streams:>3}/{inst.max_streams:<3}"
    )
    gone = inst.status in (InstanceStatus.FAILED, InstanceStatus.LEFT)
    if gone:
        line += "  (fenced: a restart registers a new incarnation)"
    elif hb is not None and hb.incarnation == inst.incarnation:
        running = sum(1 for r in hb.streams if r.state is StreamRunState.RUNNING)
        age = (now - hb.time).total_seconds()
        line += f"  reports {running:>3} running  cpu {hb.metrics.cpu_percent:5.1f}%"
        line += f"  hb {max(age, 0.0):4.1f}s ago"
    return line


def _stream_counts(state: ClusterState) -> dict[AssignmentStatus, int]:
    counts = dict.fromkeys(AssignmentStatus, 0)
    for s in state.streams.values():
        counts[s.status] += 1
    return counts


def summary_line(state: ClusterState) -> str:
    """``summary: key=value ...``: the machine-readable gist of the state."""
    counts = _stream_counts(state)
    insts = list(state.instances.values())
    active = [i for i in insts if i.status is InstanceStatus.ACTIVE]
    return (
        f"summary: seq={state.seq} epoch={state.epoch} leader={state.leader_id or '-'} "
        f"streams={len(state.streams)} running={counts[AssignmentStatus.RUNNING]} "
        f"migrating={counts[AssignmentStatus.MIGRATING]} "
        f"unassigned={counts[AssignmentStatus.UNASSIGNED]} "
        f"active_instances={len(active)} "
        f"active_streams={sum(i.current_streams for i in active)} "
        f"failed_instances={sum(1 for i in insts if i.status is InstanceStatus.FAILED)} "
        f"maintenance={state.maintenance}"
    )


def render(
    state: ClusterState,
    heartbeats: Mapping[str, Heartbeat],
    recent: RecentEvents,
    header: Header,
    *,
    now: datetime,
) -> list[str]:
    """The whole status screen as lines (no trailing newlines)."""
    health = system_health(state)
    lines = [
        f"streamplane demo   prefix {header.prefix}   up {header.elapsed_s:5.1f}s   "
        f"logs {header.log_dir}",
        f"control log: seq {state.seq}  epoch {state.epoch}  leader {state.leader_id or '-'}  "
        f"health {health.overall_health().value}"
        + ("  MAINTENANCE: " + (state.maintenance_reason or "") if state.maintenance else ""),
        "",
        f"instances ({len(state.instances)})",
    ]
    for inst in sorted(state.instances.values(), key=lambda i: i.server_id):
        lines.append(_instance_line(inst, heartbeats.get(inst.server_id), now))
    counts = _stream_counts(state)
    lines += [
        "",
        f"streams {len(state.streams)}: "
        + ", ".join(f"{k.value} {v}" for k, v in counts.items() if v or k.value == "running"),
    ]
    lines += _migrations(state)
    lines += ["", "recent cluster events:"]
    lines += [f"  {describe(e)}" for e in recent.cluster] or ["  (none yet)"]
    lines += ["recent stream events:"]
    lines += [f"  {describe(e)}" for e in recent.streams] or ["  (none yet)"]
    lines += [f"note: {n}" for n in header.notes[-4:]]
    if header.keys:
        lines += ["keys: k kill a worker, l kill the leader, a add a worker, q quit"]
    lines.append(summary_line(state))
    return lines


def _migrations(state: ClusterState) -> Sequence[str]:
    moving = [s for s in state.streams.values() if s.migration_state is not None]
    lines = [f"migrations in flight: {len(moving)}"]
    for s in sorted(moving, key=lambda s: s.stream_id)[:6]:
        m = s.migration_state
        assert m is not None
        lines.append(f"  {s.stream_id}: {m.from_server} -> {m.to_server} ({m.reason})")
    if len(moving) > 6:
        lines.append(f"  ... and {len(moving) - 6} more")
    return lines
