"""The phases of a rebalance plan, in the order ``SmartLoadBalancer`` runs them.

Placements of homeless streams, must-move relocations (drain, affinity), the rebalance phase
that evens out overloaded instances, and the second chance. Each works on the call's own
:class:`~control_plane.decide.balancer.pool.ReceiverPool` and appends to the call's list of
moves; ``max_moves`` caps that list (docs/balancer.md, "The algorithm").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple

from control_plane.decide.balancer.index import (
    Index,
    fits,
    give_away_order,
    ids,
    placement_order,
)
from control_plane.decide.balancer.model import (
    REASON_AFFINITY,
    REASON_DRAIN,
    REASON_REBALANCE,
    Assignment,
    DistributionPlan,
    Move,
    StreamView,
)
from control_plane.decide.balancer.pool import ReceiverPool


class Relocation(NamedTuple):
    """A stream that must leave its instance: the stream, its current owner, the reason."""

    stream: StreamView
    source: str
    reason: str


def excess(loads: Mapping[str, int], targets: Mapping[str, int], pinned: Mapping[str, int]) -> int:
    """Load above target that could move (pinned streams cannot)."""
    return sum(
        max(0, load - targets.get(sid, 0) - pinned.get(sid, 0)) for sid, load in loads.items()
    )


def gain(pool: ReceiverPool, weight: int, source: str, target: str) -> float:
    """Drop in the pair's over-target load if ``weight`` moves from source to target."""
    ls, ts = pool.load[source], pool.target[source]
    lt, tt = pool.load[target], pool.target[target]
    before = max(0, ls - ts) + max(0, lt - tt)
    after = max(0, ls - weight - ts) + max(0, lt + weight - tt)
    return float(before - after)


def place_all(
    pool: ReceiverPool, streams: Iterable[StreamView]
) -> tuple[list[Assignment], list[StreamView]]:
    """Place each stream on its best receiver, in placement order; returns those left over."""
    assignments: list[Assignment] = []
    unassigned: list[StreamView] = []
    for s in sorted(streams, key=placement_order):
        receiver = pool.choose(s)
        if receiver is None:
            unassigned.append(s)
        else:
            pool.shift(s, None, receiver)
            assignments.append(Assignment(s.stream_id, receiver))
    return assignments, unassigned


def apply_placements(
    pool: ReceiverPool, target: DistributionPlan, idx: Index
) -> tuple[list[Assignment], list[StreamView]]:
    """Book ``target``'s placements that still apply; returns them and the streams left over."""
    unowned = {s.stream_id: s for s in idx.unowned}
    placements: list[Assignment] = []
    for a in target.placements:
        s = unowned.get(a.stream_id)
        if s is None or a.server_id not in idx.by_id:
            continue  # the plan is older than these views: the stream is gone or has a home
        if pool.load[a.server_id] + s.weight > pool.capacity[a.server_id]:
            continue
        pool.shift(s, None, a.server_id)
        placements.append(a)
        del unowned[a.stream_id]
    return placements, list(unowned.values())


def must_move(idx: Index) -> list[Relocation]:
    """Streams that must leave: on an ineligible instance, or breaking a constraint."""
    must: list[Relocation] = []
    for sid, inst in idx.by_id.items():
        for s in idx.owned[sid]:
            if not s.movable:
                continue
            if not inst.eligible:
                must.append(Relocation(s, sid, REASON_DRAIN))
            elif (s.zone is not None or s.required_tags) and not fits(inst, s):
                must.append(Relocation(s, sid, REASON_AFFINITY))
    must.sort(key=lambda m: placement_order(m.stream))
    return must


def relocate(
    pool: ReceiverPool,
    todo: list[Relocation],
    moves: list[Move],
    settled: set[str],
    max_moves: int,
) -> list[Relocation]:
    """Move each stream to its best receiver, in order; returns those that found none.

    An affinity move frees room on an eligible instance, which a stream that found none
    earlier in the pass may fit into: the pass repeats (over those left) while that happens.
    """
    while todo:
        left: list[Relocation] = []
        freed = False
        for relocation in todo:
            s, source, reason = relocation
            receiver = pool.choose(s) if len(moves) < max_moves else None
            if receiver is None:
                left.append(relocation)
                continue
            moves.append(
                Move(s.stream_id, source, receiver, reason, gain(pool, s.weight, source, receiver))
            )
            pool.shift(s, source, receiver)
            settled.add(s.stream_id)
            freed = freed or reason == REASON_AFFINITY
        if not (freed and left):
            return left
        todo = left
    return []


def second_chance(
    pool: ReceiverPool,
    leftover: list[StreamView],
    stranded: list[Relocation],
    moves: list[Move],
    settled: set[str],
    max_moves: int,
) -> tuple[list[Assignment], list[StreamView], list[Relocation]]:
    """Place the leftovers, relocate the stranded, and place again if that freed room.

    Placements go first (a stream with no home at all is worse off than one on the wrong
    instance). Only an affinity move frees room on an eligible instance; placements and
    drain moves only take room, so after the last placement pass nothing left fits anywhere.
    Returns the placements, the streams still unplaced and those still stranded.
    """
    placements, leftover = place_all(pool, leftover)
    before = len(moves)
    stranded = relocate(pool, stranded, moves, settled, max_moves)
    if leftover and any(m.reason == REASON_AFFINITY for m in moves[before:]):
        late, leftover = place_all(pool, leftover)
        placements += late
    return placements, leftover, stranded


def even_out(
    idx: Index, pool: ReceiverPool, moves: list[Move], settled: set[str], max_moves: int
) -> None:
    """Overloaded eligible instances give their cheapest streams to the neediest."""
    load, target = pool.load, pool.target
    donors = sorted(
        (sid for sid, inst in idx.by_id.items() if inst.eligible and load[sid] > target[sid]),
        key=lambda sid: (target[sid] - load[sid], sid),
    )
    pool.exclude(set(donors))
    for donor in donors:
        free_blocked = False  # an unconstrained stream found no receiver: heavier ones won't
        offer = [s for s in idx.owned[donor] if s.movable and s.stream_id not in settled]
        for s in sorted(offer, key=give_away_order):
            over = load[donor] - target[donor]
            if over <= 0 or len(moves) >= max_moves:
                break
            free = s.zone is None and not s.required_tags
            if free and free_blocked:
                continue
            receiver = pool.choose(s, max_overshoot=over)
            if receiver is None:
                free_blocked = free_blocked or free
                continue
            moves.append(
                Move(
                    s.stream_id,
                    donor,
                    receiver,
                    REASON_REBALANCE,
                    gain(pool, s.weight, donor, receiver),
                )
            )
            pool.shift(s, donor, receiver)
            settled.add(s.stream_id)


def stranded_ids(stranded: Iterable[Relocation]) -> tuple[str, ...]:
    return ids(r.stream for r in stranded)
