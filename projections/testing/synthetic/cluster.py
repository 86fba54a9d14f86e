"""Synthetic history: what happens to the cluster as a whole (new leader terms, command
outcomes, consistency checks, maintenance mode)."""

from __future__ import annotations

from events import control as ev
from projections.testing.synthetic.generator import Generator


def elect(g: Generator) -> bool:
    epoch = g.state.epoch + 1
    g.emit(ev.LeaderElected, epoch=epoch, leader_id=f"orch-{'ab'[epoch % 2]}")
    return True


def command(g: Generator) -> bool:
    command_id = f"c{g.state.seq + 1}"
    kind = g.rng.choice(("RegisterStream", "DrainInstance", "RequestRebalance"))
    if g.rng.random() < 0.7:
        g.emit(
            ev.CommandCompleted,
            command_id=command_id,
            command_type=kind,
            causationid=command_id,
        )
    else:
        g.emit(
            ev.CommandRejected,
            command_id=command_id,
            command_type=kind,
            reason="invalid_argument",
            detail="synthetic",
            causationid=command_id,
        )
    return True


def consistency(g: Generator) -> bool:
    check_id = f"k{g.state.seq + 1}"
    kind = g.rng.choice(("orphaned", "counter_mismatch", "projection_drift"))
    g.emit(ev.ConsistencyDivergenceFound, check_id=check_id, kind=kind, detail="synthetic")
    g.emit(
        ev.ConsistencyDivergenceRepaired,
        check_id=check_id,
        kind=kind,
        action="rebuild_projection",
    )
    return True


def maintenance(g: Generator) -> bool:
    if g.state.maintenance:
        g.emit(ev.MaintenanceModeLeft, reason=ev.Reasons.OPERATOR)
    else:
        g.emit(ev.MaintenanceModeEntered, reason=ev.Reasons.MASS_FAILURE)
    return True
