"""The views a check compares the fold with, as plain values (the shell reads them).

:func:`ideal_views` builds the views a consistent system shows for a state: every server's
desired set as the fold gives it, and every active worker running exactly that. Tests start
from it and break one thing; ``bench/check.py`` checks a synthetic log against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from ipaddress import ip_address
from typing import NamedTuple

from events.heartbeat import DesiredSet, Heartbeat, StreamReport, StreamRunState
from projections.fold.drift import DriftReport
from projections.fold.state import ClusterState, InstanceStatus


class LastHeartbeat(NamedTuple):
    """A server's newest heartbeat and when it was written (the record's timestamp)."""

    heartbeat: Heartbeat
    received_at: datetime


class CheckViews(NamedTuple):
    """Everything a check compares the fold with; a view that was not read is None/empty."""

    now: datetime
    #: server_id -> its newest heartbeat (None: heartbeats not read)
    heartbeats: Mapping[str, LastHeartbeat] | None = None
    #: server_id -> newest ``<prefix>.desired`` record (None: desired topic not read)
    desired: Mapping[str, DesiredSet] | None = None
    #: the projections compared with the log at their own as-of seq
    projections: Sequence[DriftReport] = ()
    #: event ids of log findings a repair already acknowledged
    acknowledged: frozenset[str] = frozenset()


def ideal_desired(state: ClusterState, *, now: datetime) -> dict[str, DesiredSet]:
    """Every server's desired set as the fold gives it at ``state.seq``."""
    # imported here: the cycle imports the commands, which import the repair half of this
    # package (the same unit; only the order of first imports is at stake)
    from control_plane.decide.cycle import desired_set

    out = {}
    for sid in state.instances.keys():
        ds = desired_set(state, sid, source="streamplane/check", now=now, new_id=lambda: "ideal")
        if ds is not None:
            out[sid] = ds
    return out


def ideal_heartbeats(state: ClusterState, *, now: datetime) -> dict[str, LastHeartbeat]:
    """A heartbeat per active instance, sent ``now``, running exactly its desired set."""
    out = {}
    for inst in state.instances.values():
        if inst.status is not InstanceStatus.ACTIVE:
            continue
        reports = tuple(
            StreamReport(stream_id=s, state=StreamRunState.RUNNING)
            for s in state.desired_streams(inst.server_id)
        )
        hb = Heartbeat(
            id="ideal",
            source=f"worker/{inst.server_id}",
            time=now,
            server_id=inst.server_id,
            incarnation=inst.incarnation,
            ip=ip_address(inst.ip),
            port=inst.port,
            max_streams=inst.max_streams,
            streams=reports,
            desired_seq=state.seq,
        )
        out[inst.server_id] = LastHeartbeat(hb, now)
    return out


def ideal_views(state: ClusterState, *, now: datetime) -> CheckViews:
    """The views of a consistent system at ``state`` (see the module docstring)."""
    return CheckViews(
        now=now,
        heartbeats=ideal_heartbeats(state, now=now),
        desired=ideal_desired(state, now=now),
    )


__all__ = ["CheckViews", "LastHeartbeat", "ideal_desired", "ideal_heartbeats", "ideal_views"]
