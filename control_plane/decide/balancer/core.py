"""SmartLoadBalancer: targets, placements and minimal-movement rebalance plans.

Pure and deterministic: no clock, no randomness, every tie broken by id. The orchestrator calls
it with views built from the folded state and records the result as a ``RebalancePlanned``
event; docs/balancer.md explains the algorithm and its guarantees. The inputs are checked in
:mod:`~control_plane.decide.balancer.index`, the plan's phases live in
:mod:`~control_plane.decide.balancer.phases`; this module strings them together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from control_plane.decide.balancer import phases
from control_plane.decide.balancer.config import BalancerConfig
from control_plane.decide.balancer.index import Index, check_instances, fits, ids, index
from control_plane.decide.balancer.model import (
    DistributionPlan,
    InstanceView,
    Move,
    Placement,
    RebalancePlan,
    StreamView,
)
from control_plane.decide.balancer.pool import ReceiverPool
from control_plane.decide.balancer.targets import compute_targets

_DEFAULTS = BalancerConfig()


class SmartLoadBalancer:
    """Pure balancer: the seed's four methods plus ``place`` and ``plan``.

    ``plan(instances, streams)`` is what the orchestrator normally calls; the separate steps
    exist so a dry run can show the targets, and so a failed instance's streams can be placed
    alone with :meth:`place`. Its thresholds come in as a :class:`BalancerConfig` (the
    defaults when none is given); it reads no environment.
    """

    __slots__ = ("config",)

    def __init__(self, config: BalancerConfig | None = None) -> None:
        self.config = config if config is not None else _DEFAULTS

    def calculate_optimal_distribution(
        self, instances: Sequence[InstanceView], streams: Iterable[StreamView]
    ) -> DistributionPlan:
        """Target load per instance, and homes for the streams without an owner."""
        return self._distribute(index(instances, streams))

    def detect_imbalance(
        self, instances: Sequence[InstanceView], streams: Iterable[StreamView]
    ) -> bool:
        """True when a plan is worth making: an ineligible instance holds a movable stream, a
        stream breaks its zone/tag constraint, or an eligible instance exceeds its target by
        more than ``imbalance_threshold`` of it (and by more than ``imbalance_min_weight``)."""
        idx = index(instances, streams)
        targets, _ = compute_targets(idx.instances, idx.targetable, idx.loads)
        threshold, min_weight = self.config.imbalance_threshold, self.config.imbalance_min_weight
        for sid, inst in idx.by_id.items():
            if any(s.movable and not (inst.eligible and fits(inst, s)) for s in idx.owned[sid]):
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
        return self._rebalance(target, index(instances, streams))

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
        by_id = check_instances(instances)
        loads = {sid: current_loads.get(sid, 0) for sid in by_id}
        todo = index((), (s._replace(owner=None) for s in streams_to_place)).unowned
        total = sum(loads.values()) + sum(s.weight for s in todo)
        targets, _ = compute_targets(instances, total, loads)
        pool = ReceiverPool(instances, loads, targets, self.config.candidate_limit)
        for s in existing:
            if s.owner in by_id:
                pool.add_group(s.owner, s.anti_affinity)
        assignments, unassigned = phases.place_all(pool, todo)
        return Placement(tuple(assignments), ids(unassigned), MappingProxyType(dict(loads)))

    def plan(
        self, instances: Sequence[InstanceView], streams: Iterable[StreamView]
    ) -> RebalancePlan:
        """Targets, placements and moves in one call (the orchestrator's usual entry point)."""
        idx = index(instances, streams)
        return self._rebalance(self._distribute(idx), idx)

    # --- internals -------------------------------------------------------------------------

    def _pool(self, idx: Index, loads: dict[str, int], targets: dict[str, int]) -> ReceiverPool:
        pool = ReceiverPool(idx.instances, loads, targets, self.config.candidate_limit)
        pool.set_groups(idx.groups)
        return pool

    def _distribute(self, idx: Index) -> DistributionPlan:
        targets, effective = compute_targets(idx.instances, idx.targetable, idx.loads)
        pool = self._pool(idx, dict(idx.loads), targets)
        assignments, unassigned = phases.place_all(pool, idx.unowned)
        _, ideal = _load_factors(idx.loads, effective, idx.targetable)
        return DistributionPlan(
            targets=MappingProxyType(targets),
            effective_capacity=MappingProxyType(effective),
            placements=tuple(assignments),
            unassigned=ids(unassigned),
            total_load=idx.total,
            ideal_load_factor=ideal,
        )

    def _rebalance(self, target: DistributionPlan, idx: Index) -> RebalancePlan:
        max_moves = self.config.max_moves
        loads = dict(idx.loads)
        targets = {sid: target.targets.get(sid, 0) for sid in idx.by_id}
        pool = self._pool(idx, loads, targets)
        placements, leftover = phases.apply_placements(pool, target, idx)
        settled = {a.stream_id for a in placements}  # not to be offered by the rebalance phase
        lower_bound = phases.excess(loads, targets, idx.pinned)
        moves: list[Move] = []
        stranded = phases.relocate(pool, phases.must_move(idx), moves, settled, max_moves)
        # A stranded stream still has to leave, with its own reason, in the second chance: the
        # rebalance phase must not move it as well (no stream moves twice).
        settled.update(phases.stranded_ids(stranded))
        phases.even_out(idx, pool, moves, settled, max_moves)
        # Moves may have freed room that earlier placements lacked: try again, with the donors
        # back in, before declaring anything unplaceable.
        pool.readmit()
        late, unassigned, stranded = phases.second_chance(
            pool, leftover, stranded, moves, settled, max_moves
        )
        placements += late
        max_factor, ideal = _load_factors(loads, target.effective_capacity, idx.targetable)
        total = idx.total or 1
        return RebalancePlan(
            moves=tuple(moves),
            lower_bound=lower_bound,
            moved_weight=_moved_weight(idx, moves),
            score_before=lower_bound / total,
            score_after=phases.excess(loads, targets, idx.pinned) / total,
            max_load_factor=max_factor,
            ideal_load_factor=ideal,
            targets=MappingProxyType(targets),
            loads_after=MappingProxyType(loads),
            placements=tuple(placements),
            unassigned=ids(unassigned),
            stranded=phases.stranded_ids(stranded),
        )


def _moved_weight(idx: Index, moves: Sequence[Move]) -> int:
    moved = {m.stream_id for m in moves}
    sources = {m.from_server for m in moves}
    return sum(s.weight for sid in sources for s in idx.owned[sid] if s.stream_id in moved)


def _load_factors(
    loads: Mapping[str, int], effective: Mapping[str, int], total: int
) -> tuple[float, float]:
    """(max load factor over eligible instances, ideal load factor)."""
    total_effective = sum(effective.values())
    ideal = total / total_effective if total_effective else 0.0
    factors = [loads[sid] / eff for sid, eff in effective.items() if eff > 0]
    return (max(factors) if factors else 0.0), ideal
