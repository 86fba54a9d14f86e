"""The seed's ConsistencyChecker: ``fold(control log)`` against every view, pure.

The shell (:mod:`control_plane.checker_run`, :mod:`control_plane.checker_io`) replays the
log with the shared fold and reads the views; everything here takes them as plain values
(:class:`CheckViews`) and returns a
:class:`~control_plane.decide.checker.report.ConsistencyReport`. No clock: ``now`` is a
field of the views. The seed's four methods split the kinds:

- :meth:`ConsistencyChecker.verify_stream_assignments`: do the views hold the fold's
  assignments (projection drift, desired-set drift)?
- :meth:`ConsistencyChecker.detect_orphaned_streams`: streams nobody will run.
- :meth:`ConsistencyChecker.resolve_conflicts`: two runners of one stream, and what the
  fold refused or noted in the log (seq gap/repeat, stale epoch, ...).
- :meth:`ConsistencyChecker.synchronize_instance_state`: what each worker runs against what
  it should run, and capacity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from control_plane.decide.checker.report import (
    LOG_VIEW,
    ConsistencyReport,
    Divergence,
)
from control_plane.decide.checker.report import DivergenceKind as K
from control_plane.decide.checker.views import CheckViews, LastHeartbeat
from events.heartbeat import DesiredSet, Heartbeat, StreamRunState
from projections.fold.state import (
    GONE_STATUSES,
    ClusterState,
    EnhancedInstance,
    FindingKind,
    InstanceStatus,
    StreamAssignment,
)

_FINDING_KINDS = {
    FindingKind.SEQ_GAP: K.SEQ_GAP,
    FindingKind.CONFLICTING_SEQ: K.SEQ_REPEAT,
    FindingKind.STALE_SEQ: K.SEQ_REPEAT,
    FindingKind.STALE_EPOCH: K.STALE_EPOCH,
    FindingKind.UNKNOWN_EPOCH: K.STALE_EPOCH,
    FindingKind.CAPACITY_EXCEEDED: K.CAPACITY_EXCEEDED,
}
#: stream ids listed in one divergence's detail
_LISTED = 5


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """The checker's bounds (settings of the process that runs it)."""

    #: an owner silent this long (no heartbeat of its incarnation) has orphaned its streams;
    #: above the failure detector's ``fail_after`` so that a normal failover is not named
    silent_after: timedelta = timedelta(seconds=30)
    #: a stream waiting this long while an instance has room for it is orphaned
    unassigned_after: timedelta = timedelta(seconds=60)
    #: heartbeats older than this say nothing about what runs now
    heartbeat_fresh: timedelta = timedelta(seconds=15)


class ConsistencyChecker:
    """Pure checks of a folded state against its views (see the module docstring)."""

    def __init__(self, config: CheckConfig | None = None) -> None:
        self.config = config or CheckConfig()

    def check(self, state: ClusterState, views: CheckViews) -> ConsistencyReport:
        """Every kind at once; the report's ``checked`` says what was looked at."""
        found = (
            self.verify_stream_assignments(state, views)
            + self.detect_orphaned_streams(state, views)
            + self.resolve_conflicts(state, views)
            + self.synchronize_instance_state(state, views)
        )
        checked = {"entities": len(state.streams) + len(state.instances)}
        checked["findings"] = len(state.findings)
        lag: dict[str, int] = {}
        for report in views.projections:  # a view may come in parts (the Faust tables)
            name = report.projection.value
            checked[name] = checked.get(name, 0) + report.checked
            lag[name] = lag.get(name, 0) + report.lag
        if views.desired is not None:
            checked["desired"] = len(views.desired)
            lag["desired"] = sum(1 for d in views.desired.values() if d.seq > state.seq)
        if views.heartbeats is not None:
            checked["heartbeats"] = len(self._fresh(views))
        return ConsistencyReport(state.seq, checked, tuple(found), lag)

    # --- verify_stream_assignments: the views -------------------------------------------

    def verify_stream_assignments(self, state: ClusterState, views: CheckViews) -> list[Divergence]:
        """Projection drift (each drifted key of each view) and desired-set drift."""
        out = [
            Divergence(
                K.PROJECTION_DRIFT,
                d.projection.value,
                stream_id=d.key if d.table in ("streams", "assignments") else None,
                server_id=d.key if d.table == "instances" else None,
                key=f"{d.table}:{d.key}",
                detail=f"fields {list(d.fields)}" if d.fields else "missing or unexpected",
            )
            for report in views.projections
            for d in report.drifts
        ]
        if views.desired is not None:
            out += desired_drift(state, views.desired)
        return out

    # --- detect_orphaned_streams --------------------------------------------------------

    def detect_orphaned_streams(self, state: ClusterState, views: CheckViews) -> list[Divergence]:
        """Owner gone (fold) or silent (heartbeats), or waiting while an instance has room."""
        silent = self._silent_owners(state, views)
        out = []
        for s in state.streams.values():
            if s.server_id is not None:
                why = _gone(state.instances.get(s.server_id), s) or silent.get(s.server_id)
                if why:
                    out.append(Divergence(K.ORPHANED, "state", s.stream_id, s.server_id, None, why))
            elif s.stream_id in state.unplaced and self._waited(s, views.now):
                home = _room_for(state, s, views.now - self.config.unassigned_after)
                if home is not None:
                    detail = f"waiting while {home!r} has room"
                    out.append(Divergence(K.ORPHANED, "state", s.stream_id, None, None, detail))
        return sorted(out)

    def _waited(self, s: StreamAssignment, now: datetime) -> bool:
        since = s.registered_at
        return since is None or now - since >= self.config.unassigned_after

    def _silent_owners(self, state: ClusterState, views: CheckViews) -> dict[str, str]:
        if views.heartbeats is None:
            return {}
        out = {}
        for sid in state.held:
            inst = state.instances.get(sid)
            if inst is None or inst.status in GONE_STATUSES:
                continue
            seen = views.heartbeats.get(sid)
            heard = seen is not None and seen.heartbeat.incarnation == inst.incarnation
            last = seen.received_at if seen is not None and heard else inst.registered_at
            if last is None or views.now - last >= self.config.silent_after:
                out[sid] = f"owner {sid!r} silent since {last.isoformat() if last else 'ever'}"
        return out

    # --- resolve_conflicts: two runners, and the log's own findings ---------------------

    def resolve_conflicts(self, state: ClusterState, views: CheckViews) -> list[Divergence]:
        """Streams running on two instances outside a migration; the fold's findings."""
        out = [
            Divergence(
                _FINDING_KINDS.get(f.kind, K.REFUSED_EVENT),
                LOG_VIEW,
                key=f.event_id,
                detail=f"seq {f.seq} {f.event_type}: {f.kind.value}: {f.detail}",
            )
            for f in state.findings
            if f.event_id not in views.acknowledged
        ]
        for sid, copies in sorted(self.duplicates(state, views).items()):
            for server_id in copies:
                detail = f"also runs on {server_id!r}; owner {state.streams[sid].server_id!r}"
                out.append(Divergence(K.DUPLICATED, "heartbeats", sid, server_id, None, detail))
        return out

    def duplicates(self, state: ClusterState, views: CheckViews) -> dict[str, list[str]]:
        """stream_id -> the servers running a copy the fold does not explain, for streams
        reported by two or more (the owner and a migration's target are explained)."""
        runners: dict[str, list[str]] = {}
        for server_id, seen in self._fresh(views).items():
            for r in seen.heartbeat.streams:
                if r.state is not StreamRunState.FAILED:
                    runners.setdefault(r.stream_id, []).append(server_id)
        out = {}
        for sid, servers in runners.items():
            s = state.streams.get(sid)
            if len(servers) < 2 or s is None:
                continue
            known = {s.server_id} | ({s.migration_state.to_server} if s.migration_state else set())
            extra = sorted(x for x in servers if x not in known)
            if extra and len(servers) > 1:
                out[sid] = extra
        return out

    def _fresh(self, views: CheckViews) -> dict[str, LastHeartbeat]:
        """Heartbeats recent enough to say what runs now, from workers that had applied their
        newest desired set when they sent it (otherwise they are catching up, not wrong)."""
        if views.heartbeats is None:
            return {}
        out = {}
        for sid, seen in views.heartbeats.items():
            if views.now - seen.received_at > self.config.heartbeat_fresh:
                continue
            latest = views.desired.get(sid) if views.desired is not None else None
            if latest is not None and seen.heartbeat.desired_seq < latest.seq:
                continue
            out[sid] = seen
        return out

    # --- synchronize_instance_state: workers and capacity -------------------------------

    def synchronize_instance_state(
        self, state: ClusterState, views: CheckViews
    ) -> list[Divergence]:
        """Workers that run other than their desired set; instances over capacity."""
        dups = self.duplicates(state, views)
        out = []
        for sid, seen in sorted(self._fresh(views).items()):
            out += worker_mismatch(state, sid, seen.heartbeat, dups)
        for inst in state.instances.values():
            if inst.status not in GONE_STATUSES and inst.load > inst.max_streams:
                detail = f"holds {inst.load} of {inst.max_streams}"
                out.append(
                    Divergence(K.CAPACITY_EXCEEDED, "state", None, inst.server_id, None, detail)
                )
        return out


def worker_mismatch(
    state: ClusterState, server_id: str, hb: Heartbeat, duplicates: Mapping[str, list[str]]
) -> list[Divergence]:
    """A worker's report against its desired set (a copy already named a duplicate is not
    named again). A worker the fold does not know, or of an old incarnation, should run
    nothing."""
    inst = state.instances.get(server_id)
    current = inst is not None and inst.incarnation == hb.incarnation
    if current and inst is not None and inst.status is not InstanceStatus.ACTIVE:
        return []  # suspected/quarantined/gone: the failure path owns it
    desired = set(state.desired_streams(server_id)) if current else set()
    active = {r.stream_id for r in hb.streams if r.state is not StreamRunState.FAILED}
    reported = {r.stream_id for r in hb.streams}
    extra = sorted(x for x in active - desired if server_id not in duplicates.get(x, ()))
    missing = sorted(desired - reported)
    if not extra and not missing:
        return []
    who = "" if current else f"incarnation {hb.incarnation!r} is not the current one; "
    runs = f"runs {len(extra)} undesired {extra[:_LISTED]}"
    detail = f"{who}{runs}, lacks {len(missing)} {missing[:_LISTED]}"
    return [Divergence(K.WORKER_MISMATCH, "heartbeats", None, server_id, None, detail)]


def expected_desired(state: ClusterState, server_id: str) -> tuple[str, bool, tuple[str, ...]]:
    """(incarnation, fenced, streams) of the desired set the fold gives ``server_id``."""
    inst = state.instances[server_id]
    fenced = inst.status in GONE_STATUSES
    return inst.incarnation, fenced, () if fenced else state.desired_streams(server_id)


def desired_drift(state: ClusterState, desired: Mapping[str, DesiredSet]) -> list[Divergence]:
    """Servers whose newest desired record is missing, unexpected or not the fold's set.
    A record newer than the replay (written after it ended) is lag, not drift."""
    out = []
    for sid in sorted(set(state.instances) | set(desired)):
        record = desired.get(sid)
        if record is not None and record.seq > state.seq:
            continue
        if sid not in state.instances:
            detail = (
                f"record at seq {record.seq if record else '?'} for a server the log does not know"
            )
            out.append(Divergence(K.DESIRED_DRIFT, "desired", None, sid, sid, detail))
            continue
        want = expected_desired(state, sid)
        if record is None:
            out.append(Divergence(K.DESIRED_DRIFT, "desired", None, sid, sid, "no record"))
            continue
        got = (record.incarnation, record.fenced, tuple(sorted(record.streams)))
        if got != want:
            out.append(
                Divergence(
                    K.DESIRED_DRIFT,
                    "desired",
                    None,
                    sid,
                    sid,
                    _desired_detail(want, got, record.seq),
                )
            )
    return out


def _desired_detail(
    want: tuple[str, bool, tuple[str, ...]], got: tuple[str, bool, tuple[str, ...]], seq: int
) -> str:
    parts = [f"record at seq {seq}"]
    if want[0] != got[0]:
        parts.append(f"incarnation {got[0]!r}, not {want[0]!r}")
    if want[1] != got[1]:
        parts.append(f"fenced {got[1]}, not {want[1]}")
    extra, missing = sorted(set(got[2]) - set(want[2])), sorted(set(want[2]) - set(got[2]))
    if extra or missing:
        parts.append(
            f"{len(extra)} extra {extra[:_LISTED]}, {len(missing)} missing {missing[:_LISTED]}"
        )
    return "; ".join(parts)


def _gone(owner: EnhancedInstance | None, s: StreamAssignment) -> str | None:
    if owner is None:
        return f"owner {s.server_id!r} unknown"
    if owner.status in GONE_STATUSES:
        return f"owner {s.server_id!r} is {owner.status.value}"
    if owner.incarnation != s.incarnation:
        return f"owner {s.server_id!r} is now incarnation {owner.incarnation!r}"
    return None


def _room_for(state: ClusterState, s: StreamAssignment, before: datetime) -> str | None:
    """An instance that has had room for ``s`` since ``before`` (active, not draining, in
    its zone, not where it failed), or None."""
    for inst in _by_id(state.instances.values()):
        if not inst.should_receive_streams() or inst.free_capacity() < s.weight:
            continue
        if (s.zone is not None and inst.zone != s.zone) or inst.server_id in s.failed_on:
            continue
        if inst.registered_at is not None and inst.registered_at > before:
            continue
        return inst.server_id
    return None


def _by_id(instances: Iterable[EnhancedInstance]) -> list[EnhancedInstance]:
    return sorted(instances, key=lambda i: i.server_id)


__all__ = [
    "CheckConfig",
    "CheckViews",
    "ConsistencyChecker",
    "LastHeartbeat",
    "desired_drift",
    "expected_desired",
    "worker_mismatch",
]
