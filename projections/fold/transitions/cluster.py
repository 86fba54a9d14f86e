"""Transitions of the cluster as a whole: leadership, rebalances, consistency checks,
command outcomes and maintenance mode (the fields of the state that are not maps)."""

from __future__ import annotations

import immutables

from events import control as ev
from projections.fold.state import FindingKind, PlannedMigration, RebalanceProgress
from projections.fold.transitions.common import Rejected
from projections.fold.transitions.draft import Draft

#: commands remembered for idempotency (oldest dropped past twice this many)
COMMAND_WINDOW = 10_000


def leader_elected(d: Draft, e: ev.LeaderElected) -> None:
    d.set(epoch=e.epoch, leader_id=e.leader_id)


def rebalance_planned(d: Draft, e: ev.RebalancePlanned) -> None:
    if e.dry_run:
        d.set(last_plan_id=e.plan_id, last_plan_at=e.time)
        return
    running = d.rebalance
    if running is not None:
        raise Rejected(
            FindingKind.INVALID_TRANSITION, f"rebalance {running.plan_id!r} still running"
        )
    moves = tuple(PlannedMigration(m.stream_id, m.from_server, m.to_server) for m in e.moves)
    progress = RebalanceProgress(plan_id=e.plan_id, moves=moves, started_seq=e.seq)
    d.set(last_plan_id=e.plan_id, last_plan_at=e.time, rebalance=progress)


def rebalance_completed(d: Draft, e: ev.RebalanceCompleted) -> None:
    running = d.rebalance
    if running is None or running.plan_id != e.plan_id:
        raise Rejected(FindingKind.INVALID_TRANSITION, f"no rebalance {e.plan_id!r} in progress")
    d.set(rebalance=None)


def divergence_found(d: Draft, e: ev.ConsistencyDivergenceFound) -> None:
    d.set(divergences_found=d.divergences_found + 1)


def divergence_repaired(d: Draft, e: ev.ConsistencyDivergenceRepaired) -> None:
    d.set(divergences_repaired=d.divergences_repaired + 1)


def command_done(d: Draft, e: ev.CommandRejected | ev.CommandCompleted) -> None:
    done = d.processed_commands.set(e.command_id, e.seq)
    if len(done) > 2 * COMMAND_WINDOW:
        newest = sorted(done.items(), key=lambda kv: kv[1])[-COMMAND_WINDOW:]
        done = immutables.Map(newest)
    d.set(processed_commands=done)


def maintenance_entered(d: Draft, e: ev.MaintenanceModeEntered) -> None:
    d.set(maintenance=True, maintenance_reason=e.reason)


def maintenance_left(d: Draft, e: ev.MaintenanceModeLeft) -> None:
    d.set(maintenance=False, maintenance_reason=None)
