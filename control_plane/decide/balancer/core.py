"""SmartLoadBalancer: targets, placements and minimal-movement rebalance plans.

Pure and deterministic: no clock, no randomness, every tie broken by id. The orchestrator calls
it with views built from the folded state and records the result as a ``RebalancePlanned``
event; docs/balancer.md explains the algorithm and its guarantees.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from operator import attrgetter
from types import MappingProxyType
from typing import NamedTuple

from control_plane.decide.balancer.errors import BalancerInputError
from control_plane.decide.balancer.model import (
    REASON_AFFINITY,
    REASON_DRAIN,
    REASON_REBALANCE,
    Assignment,
    BalancerSettings,
    DistributionPlan,
    InstanceView,
    Move,
    Placement,
    RebalancePlan,
    StreamView,
)
from control_plane.decide.balancer.pool import ReceiverPool
from control_plane.decide.balancer.targets import compute_targets

# A stream that must leave its instance: (stream, current owner, reason).
_Relocation = tuple[StreamView, str, str]


class _Index(NamedTuple):
    """The inputs checked and grouped once per call."""

    instances: Sequence[InstanceView]
    by_id: dict[str, InstanceView]
    loads: dict[str, int]
    owned: dict[str, list[StreamView]]
    unowned: list[StreamView]
    total: int
    pinned: dict[str, int]  # weight of immovable streams held by ineligible instances
    groups: dict[str, dict[str, int]]  # server_id -> anti-affinity group -> streams held

    @property
    def targetable(self) -> int:
        """The load to spread over eligible instances: all but what is pinned where it is."""
        return self.total - sum(self.pinned.values())


def _check_instances(instances: Iterable[InstanceView]) -> dict[str, InstanceView]:
    by_id: dict[str, InstanceView] = {}
    for inst in instances:
        if inst.server_id in by_id:
            raise BalancerInputError("duplicate instance", field="server_id", value=inst.server_id)
        if inst.capacity < 0:
            raise BalancerInputError(
                f"negative capacity on {inst.server_id}", field="capacity", value=inst.capacity
            )
        if not 0.0 < inst.perf_factor <= 1.0:
            raise BalancerInputError(
                f"perf_factor of {inst.server_id} must be in (0, 1]",
                field="perf_factor",
                value=inst.perf_factor,
            )
        by_id[inst.server_id] = inst
    return by_id


def _index(instances: Sequence[InstanceView], streams: Iterable[StreamView]) -> _Index:
    """Validate and group: loads and streams per owner; unknown owners count as no owner."""
    by_id = _check_instances(instances)
    loads = dict.fromkeys(by_id, 0)
    owned: dict[str, list[StreamView]] = {sid: [] for sid in by_id}
    unowned: list[StreamView] = []
    seen: set[str] = set()
    total = 0
    for s in streams:
        if s.stream_id in seen:
            raise BalancerInputError("duplicate stream", field="stream_id", value=s.stream_id)
        seen.add(s.stream_id)
        if s.weight < 1:
            raise BalancerInputError(
                f"weight of {s.stream_id} must be >= 1", field="weight", value=s.weight
            )
        total += s.weight
        owner = s.owner
        if owner is None or owner not in owned:
            unowned.append(s)
        else:
            owned[owner].append(s)
            loads[owner] += s.weight
    pinned = {
        sid: sum(s.weight for s in owned[sid] if not s.movable)
        for sid, inst in by_id.items()
        if not inst.eligible
    }
    groups: dict[str, dict[str, int]] = {}
    for sid, held in owned.items():
        for s in held:
            if s.anti_affinity is not None:
                counts = groups.setdefault(sid, {})
                counts[s.anti_affinity] = counts.get(s.anti_affinity, 0) + 1
    return _Index(tuple(instances), by_id, loads, owned, unowned, total, pinned, groups)


def _fits(instance: InstanceView, stream: StreamView) -> bool:
    """Whether the stream's hard constraints (zone, tags) allow this instance."""
    if stream.zone is not None and instance.zone != stream.zone:
        return False
    return stream.required_tags <= instance.tags


def _placement_order(stream: StreamView) -> tuple[int, int, str]:
    # Highest priority first; within a priority the heaviest first, as it is hardest to fit.
    return (-stream.priority, -stream.weight, stream.stream_id)


# Cheapest first: the lightest, then the least important, then by id (attrgetter: C speed).
_give_away_order = attrgetter("weight", "priority", "stream_id")


def _excess(loads: Mapping[str, int], targets: Mapping[str, int], pinned: Mapping[str, int]) -> int:
    """Load above target that could move (pinned streams cannot)."""
    return sum(
        max(0, load - targets.get(sid, 0) - pinned.get(sid, 0)) for sid, load in loads.items()
    )


def _gain(pool: ReceiverPool, weight: int, source: str, target: str) -> float:
    """Drop in the pair's over-target load if ``weight`` moves from source to target."""
    ls, ts = pool.load[source], pool.target[source]
    lt, tt = pool.load[target], pool.target[target]
    before = max(0, ls - ts) + max(0, lt - tt)
    after = max(0, ls - weight - ts) + max(0, lt + weight - tt)
    return float(before - after)


def _place_all(
    pool: ReceiverPool, streams: Iterable[StreamView]
) -> tuple[list[Assignment], list[StreamView]]:
    """Place each stream on its best receiver, in placement order; returns those left over."""
    assignments: list[Assignment] = []
    unassigned: list[StreamView] = []
    for s in sorted(streams, key=_placement_order):
        receiver = pool.choose(s)
        if receiver is None:
            unassigned.append(s)
        else:
            pool.shift(s, None, receiver)
            assignments.append(Assignment(s.stream_id, receiver))
    return assignments, unassigned


def _ids(streams: Iterable[StreamView]) -> tuple[str, ...]:
    return tuple(s.stream_id for s in streams)


def _moved_weight(idx: _Index, moves: Sequence[Move]) -> int:
    ids = {m.stream_id for m in moves}
    sources = {m.from_server for m in moves}
    return sum(s.weight for sid in sources for s in idx.owned[sid] if s.stream_id in ids)


def _load_factors(
    loads: Mapping[str, int], effective: Mapping[str, int], total: int
) -> tuple[float, float]:
    """(max load factor over eligible instances, ideal load factor)."""
    total_effective = sum(effective.values())
    ideal = total / total_effective if total_effective else 0.0
    factors = [loads[sid] / eff for sid, eff in effective.items() if eff > 0]
    return (max(factors) if factors else 0.0), ideal


class SmartLoadBalancer:
    """Pure balancer: the seed's four methods plus ``place`` and ``plan``.

    ``plan(instances, streams)`` is what the orchestrator normally calls; the separate steps
    exist so a dry run can show the targets, and so a failed instance's streams can be placed
    alone with :meth:`place`.
    """

    def __init__(self, settings: BalancerSettings | None = None) -> None:
        self.settings = settings if settings is not None else BalancerSettings()

    def calculate_optimal_distribution(
        self, instances: Sequence[InstanceView], streams: Iterable[StreamView]
    ) -> DistributionPlan:
        """Target load per instance, and homes for the streams without an owner."""
        return self._distribute(_index(instances, streams))

    def detect_imbalance(
        self, instances: Sequence[InstanceView], streams: Iterable[StreamView]
    ) -> bool:
        """True when a plan is worth making: an ineligible instance holds a movable stream, a
        stream breaks its zone/tag constraint, or an eligible instance exceeds its target by
        more than ``imbalance_threshold`` of it (and by more than ``imbalance_min_weight``)."""
        idx = _index(instances, streams)
        targets, _ = compute_targets(idx.instances, idx.targetable, idx.loads)
        threshold, min_weight = (
            self.settings.imbalance_threshold,
            self.settings.imbalance_min_weight,
        )
        for sid, inst in idx.by_id.items():
            if any(s.movable and not (inst.eligible and _fits(inst, s)) for s in idx.owned[sid]):
                return True
            excess = idx.loads[sid] - targets[sid]
            if excess > max(threshold * targets[sid], min_weight):
                return True
        return False

    def generate_rebalance_plan(
        self,
        target: DistributionPlan,
        instances: Sequence[InstanceView],
        streams: Iterable[StreamView],
    ) -> RebalancePlan:
        """The moves from the current placement (plus ``target``'s placements) to the targets.

        First every movable stream on an ineligible instance ("drain") or breaking its zone/tag
        constraint ("affinity") goes to the best receiver, highest priority first. Then each
        instance above its target gives away its cheapest streams until it is at or below the
        target, each to the receiver with the largest deficit that the move leaves less
        overloaded than the donor was. No stream moves twice; capacity is never exceeded.
        """
        return self._rebalance(target, _index(instances, streams))

    def place(
        self,
        instances: Sequence[InstanceView],
        streams_to_place: Sequence[StreamView],
        current_loads: Mapping[str, int],
        *,
        existing: Iterable[StreamView] = (),
    ) -> Placement:
        """Homes for new streams or a failed instance's streams (their ``owner`` is ignored).

        Highest priority first; those that fit nowhere are reported in ``unassigned`` in that
        order. ``existing`` (streams already placed) only informs anti-affinity.
        """
        by_id = _check_instances(instances)
        loads = {sid: current_loads.get(sid, 0) for sid in by_id}
        todo = _index((), (s._replace(owner=None) for s in streams_to_place)).unowned
        total = sum(loads.values()) + sum(s.weight for s in todo)
        targets, _ = compute_targets(instances, total, loads)
        pool = ReceiverPool(instances, loads, targets, self.settings.candidate_limit)
        for s in existing:
            if s.owner in by_id:
                pool.add_group(s.owner, s.anti_affinity)
        assignments, unassigned = _place_all(pool, todo)
        return Placement(tuple(assignments), _ids(unassigned), MappingProxyType(dict(loads)))

    def plan(
        self, instances: Sequence[InstanceView], streams: Iterable[StreamView]
    ) -> RebalancePlan:
        """Targets, placements and moves in one call (the orchestrator's usual entry point)."""
        idx = _index(instances, streams)
        return self._rebalance(self._distribute(idx), idx)

    # --- internals -------------------------------------------------------------------------

    def _pool(self, idx: _Index, loads: dict[str, int], targets: dict[str, int]) -> ReceiverPool:
        pool = ReceiverPool(idx.instances, loads, targets, self.settings.candidate_limit)
        pool.set_groups(idx.groups)
        return pool

    def _distribute(self, idx: _Index) -> DistributionPlan:
        targets, effective = compute_targets(idx.instances, idx.targetable, idx.loads)
        pool = self._pool(idx, dict(idx.loads), targets)
        assignments, unassigned = _place_all(pool, idx.unowned)
        _, ideal = _load_factors(idx.loads, effective, idx.targetable)
        return DistributionPlan(
            targets=MappingProxyType(targets),
            effective_capacity=MappingProxyType(effective),
            placements=tuple(assignments),
            unassigned=_ids(unassigned),
            total_load=idx.total,
            ideal_load_factor=ideal,
        )

    def _rebalance(self, target: DistributionPlan, idx: _Index) -> RebalancePlan:
        loads = dict(idx.loads)
        targets = {sid: target.targets.get(sid, 0) for sid in idx.by_id}
        pool = self._pool(idx, loads, targets)
        placements, leftover = _apply_placements(pool, target, idx)
        settled = {a.stream_id for a in placements}  # not to be offered by the rebalance phase
        lower_bound = _excess(loads, targets, idx.pinned)
        moves: list[Move] = []
        stranded = self._relocate(pool, self._must_move(idx), moves, settled)
        # A stranded stream still has to leave, with its own reason, in the second chance: the
        # rebalance phase must not move it as well (no stream moves twice).
        settled.update(_ids(s for s, _, _ in stranded))
        self._even_out(idx, pool, moves, settled)
        # Moves may have freed room that earlier placements lacked: try again, with the donors
        # back in, before declaring anything unplaceable.
        pool.readmit()
        late, unassigned, stranded = self._second_chance(pool, leftover, stranded, moves, settled)
        placements += late
        max_factor, ideal = _load_factors(loads, target.effective_capacity, idx.targetable)
        total = idx.total or 1
        return RebalancePlan(
            moves=tuple(moves),
            lower_bound=lower_bound,
            moved_weight=_moved_weight(idx, moves),
            score_before=lower_bound / total,
            score_after=_excess(loads, targets, idx.pinned) / total,
            max_load_factor=max_factor,
            ideal_load_factor=ideal,
            targets=MappingProxyType(targets),
            loads_after=MappingProxyType(loads),
            placements=tuple(placements),
            unassigned=_ids(unassigned),
            stranded=_ids(s for s, _, _ in stranded),
        )

    def _must_move(self, idx: _Index) -> list[_Relocation]:
        """Streams that must leave: on an ineligible instance, or breaking a constraint."""
        must: list[_Relocation] = []
        for sid, inst in idx.by_id.items():
            for s in idx.owned[sid]:
                if not s.movable:
                    continue
                if not inst.eligible:
                    must.append((s, sid, REASON_DRAIN))
                elif (s.zone is not None or s.required_tags) and not _fits(inst, s):
                    must.append((s, sid, REASON_AFFINITY))
        must.sort(key=lambda m: _placement_order(m[0]))
        return must

    def _relocate(
        self, pool: ReceiverPool, todo: list[_Relocation], moves: list[Move], settled: set[str]
    ) -> list[_Relocation]:
        """Move each stream to its best receiver, in order; returns those that found none.

        An affinity move frees room on an eligible instance, which a stream that found none
        earlier in the pass may fit into: the pass repeats (over those left) while that happens.
        """
        while todo:
            left: list[_Relocation] = []
            freed = False
            for relocation in todo:
                s, source, reason = relocation
                receiver = pool.choose(s) if len(moves) < self.settings.max_moves else None
                if receiver is None:
                    left.append(relocation)
                    continue
                gain = _gain(pool, s.weight, source, receiver)
                moves.append(Move(s.stream_id, source, receiver, reason, gain))
                pool.shift(s, source, receiver)
                settled.add(s.stream_id)
                freed = freed or reason == REASON_AFFINITY
            if not (freed and left):
                return left
            todo = left
        return []

    def _second_chance(
        self,
        pool: ReceiverPool,
        leftover: list[StreamView],
        stranded: list[_Relocation],
        moves: list[Move],
        settled: set[str],
    ) -> tuple[list[Assignment], list[StreamView], list[_Relocation]]:
        """Place the leftovers, relocate the stranded, and place again if that freed room.

        Placements go first (a stream with no home at all is worse off than one on the wrong
        instance). Only an affinity move frees room on an eligible instance; placements and
        drain moves only take room, so after the last placement pass nothing left fits anywhere.
        Returns the placements, the streams still unplaced and those still stranded.
        """
        placements, leftover = _place_all(pool, leftover)
        before = len(moves)
        stranded = self._relocate(pool, stranded, moves, settled)
        if leftover and any(m.reason == REASON_AFFINITY for m in moves[before:]):
            late, leftover = _place_all(pool, leftover)
            placements += late
        return placements, leftover, stranded

    def _even_out(
        self, idx: _Index, pool: ReceiverPool, moves: list[Move], settled: set[str]
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
            for s in sorted(offer, key=_give_away_order):
                excess = load[donor] - target[donor]
                if excess <= 0 or len(moves) >= self.settings.max_moves:
                    break
                free = s.zone is None and not s.required_tags
                if free and free_blocked:
                    continue
                receiver = pool.choose(s, max_overshoot=excess)
                if receiver is None:
                    free_blocked = free_blocked or free
                    continue
                gain = _gain(pool, s.weight, donor, receiver)
                moves.append(Move(s.stream_id, donor, receiver, REASON_REBALANCE, gain))
                pool.shift(s, donor, receiver)
                settled.add(s.stream_id)


def _apply_placements(
    pool: ReceiverPool, target: DistributionPlan, idx: _Index
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
