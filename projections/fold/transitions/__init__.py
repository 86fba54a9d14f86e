"""One pure transition per control event type, and :data:`TRANSITIONS`, the one table the
fold dispatches on (:mod:`projections.fold.driver`).

A transition reads the state through a :class:`Draft` and writes the event's changes into
it, or raises :class:`Rejected`: the driver turns that into a finding and the state stays as
it was (never a half-applied change). **Every transition checks before it writes**
(:mod:`projections.fold.transitions.common`). By what they change:

- :mod:`~projections.fold.transitions.instances`: registration, liveness, drains, capacity;
- :mod:`~projections.fold.transitions.streams`: registration, assignment, start, failure;
- :mod:`~projections.fold.transitions.migrations`: make-before-break migrations;
- :mod:`~projections.fold.transitions.cluster`: leadership, rebalances, consistency,
  command outcomes, maintenance;
- :mod:`~projections.fold.transitions.enrollment`: the keys workers must sign with;
- :mod:`~projections.fold.transitions.draft`: the draft; ``common``: what they share.
"""

from __future__ import annotations

from events import control as ev
from events.base import ControlEvent
from projections.fold.transitions import cluster, enrollment, instances, migrations, streams
from projections.fold.transitions.common import Rejected, Transition
from projections.fold.transitions.draft import Draft

TRANSITIONS: dict[type[ControlEvent], Transition] = {
    ev.LeaderElected: cluster.leader_elected,
    ev.InstanceRegistered: instances.instance_registered,
    ev.InstanceSuspected: instances.instance_suspected,
    ev.InstanceRecovered: instances.instance_recovered,
    ev.InstanceFailed: instances.instance_gone,
    ev.InstanceDeregistered: instances.instance_gone,
    ev.InstanceQuarantined: instances.instance_quarantined,
    ev.InstanceDraining: instances.instance_draining,
    ev.InstanceUndrained: instances.instance_undrained,
    ev.InstanceDrained: instances.instance_drained,
    ev.InstanceCapacityChanged: instances.instance_capacity_changed,
    ev.PerformanceSampled: instances.performance_sampled,
    ev.StreamRegistered: streams.stream_registered,
    ev.StreamDeregistered: streams.stream_deregistered,
    ev.StreamAssigned: streams.stream_assigned,
    ev.StreamUnassigned: streams.stream_unassigned,
    ev.StreamStarted: streams.stream_started,
    ev.StreamFailed: streams.stream_failed,
    ev.StreamWaiting: streams.stream_waiting,
    ev.MigrationStarted: migrations.migration_started,
    ev.MigrationCompleted: migrations.migration_completed,
    ev.MigrationAborted: migrations.migration_aborted,
    ev.RebalancePlanned: cluster.rebalance_planned,
    ev.RebalanceCompleted: cluster.rebalance_completed,
    ev.ConsistencyDivergenceFound: cluster.divergence_found,
    ev.ConsistencyDivergenceRepaired: cluster.divergence_repaired,
    ev.CommandRejected: cluster.command_done,
    ev.CommandCompleted: cluster.command_done,
    ev.MaintenanceModeEntered: cluster.maintenance_entered,
    ev.MaintenanceModeLeft: cluster.maintenance_left,
    ev.InstanceEnrolled: enrollment.instance_enrolled,
    ev.InstanceRevoked: enrollment.instance_revoked,
}
"""Event type -> its transition (what the driver runs for each event that passes the gate)."""

__all__ = ["TRANSITIONS", "Draft", "Rejected", "Transition"]
