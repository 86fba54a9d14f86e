"""Hypothesis properties of the SmartLoadBalancer on random clusters (pure, no event loop)."""

from __future__ import annotations

import random
from collections import Counter

from hypothesis import example, given, settings
from hypothesis import strategies as st

from control_plane.decide.balancer import (
    REASON_AFFINITY,
    REASON_DRAIN,
    REASON_REBALANCE,
    InstanceView,
    RebalancePlan,
    SmartLoadBalancer,
    StreamView,
)

BALANCER = SmartLoadBalancer()
ZONES = (None, "a", "b")
Cluster = tuple[list[InstanceView], list[StreamView]]
TAGS: tuple[frozenset[str], ...] = (
    frozenset(),
    frozenset({"gpu"}),
    frozenset({"ssd"}),
    frozenset({"gpu", "ssd"}),
)


@st.composite
def instances(draw: st.DrawFn, *, uniform: bool = False) -> list[InstanceView]:
    count = draw(st.integers(1, 12))
    same = draw(st.integers(1, 20))
    out = []
    for n in range(count):
        if uniform:
            out.append(InstanceView(f"i{n:02d}", same, eligible=draw(st.integers(0, 5)) > 0))
            continue
        out.append(
            InstanceView(
                server_id=f"i{n:02d}",
                capacity=draw(st.integers(0, 25)),
                eligible=draw(st.integers(0, 4)) > 0,
                zone=draw(st.sampled_from(ZONES)),
                tags=draw(st.sampled_from(TAGS)),
                perf_factor=draw(st.sampled_from((1.0, 1.0, 0.75, 0.5, 0.3))),
            )
        )
    return out


@st.composite
def clusters(draw: st.DrawFn, *, uniform: bool = False) -> Cluster:
    """Instances plus streams whose current placement respects every capacity."""
    insts = draw(instances(uniform=uniform))
    loads = Counter[str]()
    streams = []
    for n in range(draw(st.integers(0, 80))):
        weight = 1 if uniform else draw(st.integers(1, 5))
        pick = draw(st.integers(-1, len(insts) - 1))
        owner = insts[pick].server_id if pick >= 0 else None
        if owner is not None and loads[owner] + weight > insts[pick].capacity:
            owner = None
        if owner is not None:
            loads[owner] += weight
        constrained = not uniform and draw(st.integers(0, 5)) == 0
        streams.append(
            StreamView(
                stream_id=f"s{n:03d}",
                weight=weight,
                priority=draw(st.integers(0, 3)),
                owner=owner,
                zone=draw(st.sampled_from(ZONES)) if constrained else None,
                anti_affinity=draw(st.sampled_from((None, "g1", "g2"))),
                movable=uniform or draw(st.integers(0, 6)) > 0,
                required_tags=draw(st.sampled_from(TAGS)) if constrained else frozenset(),
            )
        )
    return insts, streams


GPU, SSD = frozenset({"gpu"}), frozenset({"ssd"})


def _pinned(
    n: int,
    weight: int = 1,
    owner: str | None = None,
    *,
    priority: int = 0,
    zone: str | None = None,
    anti_affinity: str | None = None,
    required_tags: frozenset[str] = frozenset(),
) -> StreamView:
    """The immovable stream ``s<n>``: most streams of the shrunk examples below are."""
    return StreamView(
        f"s{n:03d}", weight, priority, owner, zone, anti_affinity, False, required_tags
    )


def _off(*numbers: int) -> list[InstanceView]:
    return [InstanceView(f"i{n:02d}", 0, eligible=False) for n in numbers]


def stranded_stream_also_rebalanced() -> Cluster:
    """Shrunk by hypothesis. s004 (gpu) must leave i00 but the only gpu instance, i10, is full
    until s021 (zone a) leaves it later in the same pass; i00 is then above its target, so the
    rebalance phase moved s004 and the second chance moved it again (two moves, wrong loads)."""
    insts = [
        InstanceView("i00", 12, perf_factor=0.75),
        InstanceView("i01", 11, zone="a", perf_factor=0.75),
        InstanceView("i02", 6),
        *_off(3, 4, 5, 6, 7),
        InstanceView("i08", 4),
        *_off(9),
        InstanceView("i10", 14, tags=GPU),
    ]
    streams = [_pinned(n, 3 if n == 2 else 1, "i00") for n in range(10) if n != 4]
    streams += [_pinned(n, {14: 3, 28: 4}.get(n, 1)) for n in range(10, 30) if n != 21]
    streams += [
        StreamView("s004", 1, 1, "i00", required_tags=GPU),
        StreamView("s021", 4, owner="i10", zone="a"),
        _pinned(30, required_tags=GPU),
        _pinned(31, required_tags=GPU | SSD),
    ]
    return insts, sorted(streams, key=lambda s: s.stream_id)


def placed_before_a_relocation_freed_room() -> Cluster:
    """Shrunk by hypothesis. s000 (weight 5, gpu, no owner) finds no room on i03, the only gpu
    instance with capacity; the second chance tried it before relocating s025 (ssd) off i03,
    which freed that room, so s000 was reported unassigned although it fitted."""
    insts = [
        InstanceView("i00", 18, tags=SSD),
        *_off(1, 2),
        InstanceView("i03", 9, tags=GPU),
        *_off(4, 5),
        InstanceView("i06", 0, tags=SSD),
        InstanceView("i07", 24, zone="a"),
        InstanceView("i08", 2, zone="b", tags=GPU | SSD, perf_factor=0.3),
        InstanceView("i09", 3, zone="b", tags=GPU | SSD, perf_factor=0.3),
        InstanceView("i10", 0, eligible=False, tags=SSD, perf_factor=0.3),
    ]
    streams = [_pinned(n, 1, "i00") for n in (2, 3, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)]
    streams += [_pinned(n, 2 if n == 29 else 1) for n in range(18, 32) if n not in (25, 28)]
    streams += [
        StreamView("s000", 5, 3, required_tags=GPU, anti_affinity="g2"),
        _pinned(1, 1, "i00", zone="a", anti_affinity="g2"),
        StreamView("s004", 2, owner="i00"),
        _pinned(5, 1, "i00", priority=3, zone="b"),
        StreamView("s006", owner="i00"),
        StreamView("s011", owner="i00"),
        StreamView("s025", 4, owner="i03", required_tags=SSD),
        _pinned(28, 1, "i03"),
        _pinned(32, 3, "i03"),
    ]
    return insts, sorted(streams, key=lambda s: s.stream_id)


# Found by hypothesis and kept here so that every run checks them, whatever its database holds.
REGRESSIONS = (stranded_stream_also_rebalanced(), placed_before_a_relocation_freed_room())


def allowed(inst: InstanceView, stream: StreamView) -> bool:
    zone_ok = stream.zone is None or inst.zone == stream.zone
    return inst.eligible and zone_ok and stream.required_tags <= inst.tags


def final_owners(streams: list[StreamView], plan: RebalancePlan) -> dict[str, str | None]:
    """Replay the plan onto the input, independently of the balancer's own bookkeeping."""
    owners = {s.stream_id: s.owner for s in streams}
    for a in plan.placements:
        owners[a.stream_id] = a.server_id
    for m in plan.moves:
        owners[m.stream_id] = m.to_server
    return owners


def final_loads(
    insts: list[InstanceView], streams: list[StreamView], plan: RebalancePlan
) -> Counter[str]:
    weights = {s.stream_id: s.weight for s in streams}
    known = {i.server_id for i in insts}
    loads = Counter({sid: 0 for sid in known})
    for stream_id, owner in final_owners(streams, plan).items():
        if owner in known:
            loads[owner] += weights[stream_id]
    return loads


@settings(max_examples=300, deadline=None)
@given(clusters())
@example(REGRESSIONS[0])
@example(REGRESSIONS[1])
def test_plan_is_consistent_and_respects_hard_limits(cluster: Cluster) -> None:
    insts, streams = cluster
    plan = BALANCER.plan(insts, streams)
    by_id = {i.server_id: i for i in insts}
    by_stream = {s.stream_id: s for s in streams}
    loads = final_loads(insts, streams, plan)
    assert dict(plan.loads_after) == dict(loads)
    # capacity is a hard limit
    assert all(loads[i.server_id] <= i.capacity for i in insts)
    # no stream moves twice, and placed streams are not also moved
    moved = [m.stream_id for m in plan.moves]
    assert len(moved) == len(set(moved))
    assert not set(moved) & {a.stream_id for a in plan.placements}
    for m in plan.moves:
        stream = by_stream[m.stream_id]
        assert m.from_server == stream.owner and m.from_server != m.to_server
        assert stream.movable
        # ineligible instances receive nothing; zone/tag affinity is respected
        assert allowed(by_id[m.to_server], stream)
        assert m.reason in (REASON_REBALANCE, REASON_DRAIN, REASON_AFFINITY)
        if m.reason == REASON_DRAIN:
            assert not by_id[m.from_server].eligible
        if m.reason == REASON_REBALANCE:
            assert m.gain >= 0
    assert plan.moved_weight == sum(by_stream[m.stream_id].weight for m in plan.moves)
    for a in plan.placements:
        assert by_stream[a.stream_id].owner not in by_id
        assert allowed(by_id[a.server_id], by_stream[a.stream_id])


@settings(max_examples=300, deadline=None)
@given(clusters())
@example(REGRESSIONS[0])
@example(REGRESSIONS[1])
def test_only_overloaded_instances_give_streams_away(cluster: Cluster) -> None:
    insts, streams = cluster
    plan = BALANCER.plan(insts, streams)
    givers = {m.from_server for m in plan.moves if m.reason == REASON_REBALANCE}
    takers = {m.to_server for m in plan.moves if m.reason == REASON_REBALANCE}
    assert not givers & takers
    weights = {s.stream_id: s.weight for s in streams}
    for server_id in givers:
        # A giver stops once at or below its target, giving the cheapest streams first: just
        # before its last rebalance move it was above target. Later moves out of it (an
        # affinity retry) are added back; later arrivals only raise its final load.
        out = [(k, m) for k, m in enumerate(plan.moves) if m.from_server == server_id]
        last = max(k for k, m in out if m.reason == REASON_REBALANCE)
        moved_later = sum(weights[m.stream_id] for k, m in out if k > last)
        last_weight = weights[plan.moves[last].stream_id]
        before_last = plan.loads_after[server_id] + moved_later + last_weight
        assert before_last > plan.targets[server_id]


@settings(max_examples=300, deadline=None)
@given(clusters())
@example(REGRESSIONS[0])
@example(REGRESSIONS[1])
def test_nothing_left_behind_fits_anywhere(cluster: Cluster) -> None:
    """Drain empties and placements fill: a stream left unassigned or stranded on an
    ineligible/misplaced instance has no eligible, compatible instance with room for it."""
    insts, streams = cluster
    plan = BALANCER.plan(insts, streams)
    by_stream = {s.stream_id: s for s in streams}
    by_id = {i.server_id: i for i in insts}
    loads = plan.loads_after
    owners = final_owners(streams, plan)
    for stream_id in (*plan.unassigned, *plan.stranded):
        s = by_stream[stream_id]
        assert not any(allowed(i, s) and loads[i.server_id] + s.weight <= i.capacity for i in insts)
    for s in streams:
        owner = owners[s.stream_id]
        if owner is None or owner not in by_id:
            assert s.stream_id in plan.unassigned
        elif s.movable and not allowed(by_id[owner], s):
            assert s.stream_id in plan.stranded
    assert set(plan.unassigned) == {sid for sid, owner in owners.items() if owner not in by_id}


@settings(max_examples=200, deadline=None)
@given(clusters(), st.randoms(use_true_random=False))
def test_plan_is_deterministic_and_ignores_input_order(
    cluster: Cluster, rnd: random.Random
) -> None:
    insts, streams = cluster
    first = BALANCER.plan(insts, streams)
    assert BALANCER.plan(insts, streams) == first
    shuffled_insts, shuffled_streams = list(insts), list(streams)
    rnd.shuffle(shuffled_insts)
    rnd.shuffle(shuffled_streams)
    assert BALANCER.plan(shuffled_insts, shuffled_streams) == first


@settings(max_examples=300, deadline=None)
@given(clusters(uniform=True))
def test_uniform_cluster_moves_equal_lower_bound_and_balance_within_one(cluster: Cluster) -> None:
    insts, streams = cluster
    eligible = [i for i in insts if i.eligible]
    if len(streams) > sum(i.capacity for i in eligible):
        return  # short of capacity: covered by the placement properties
    plan = BALANCER.plan(insts, streams)
    assert len(plan.moves) == plan.lower_bound == plan.moved_weight
    assert not plan.unassigned and not plan.stranded
    loads = [plan.loads_after[i.server_id] for i in eligible]
    if loads:
        assert max(loads) - min(loads) <= 1
    assert all(plan.loads_after[i.server_id] == 0 for i in insts if not i.eligible)
    assert plan.score_after == 0.0


@settings(max_examples=300, deadline=None)
@given(clusters())
def test_targets_proportional_bounded_and_summing_to_load(cluster: Cluster) -> None:
    insts, streams = cluster
    target = BALANCER.calculate_optimal_distribution(insts, streams)
    ineligible = {i.server_id for i in insts if not i.eligible}
    # immovable streams on ineligible instances stay there: they are not spread
    total = sum(s.weight for s in streams if s.movable or s.owner not in ineligible)
    capacity = sum(i.capacity for i in insts if i.eligible)
    assert sum(target.targets.values()) == min(total, capacity)
    for i in insts:
        assert 0 <= target.targets[i.server_id] <= (i.capacity if i.eligible else 0)
        assert target.effective_capacity[i.server_id] <= i.capacity
    effective = sum(target.effective_capacity.values())
    if 0 < total <= effective:
        for i in insts:  # largest remainder: within one of the exact proportional share
            exact = total * target.effective_capacity[i.server_id] / effective
            assert abs(target.targets[i.server_id] - exact) < 1


@settings(max_examples=300, deadline=None)
@given(
    instances(),
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 5)), max_size=60),
)
def test_place_fills_by_priority_and_reports_the_rest_in_order(
    insts: list[InstanceView], specs: list[tuple[int, int]]
) -> None:
    todo = [StreamView(f"n{k:03d}", w, p) for k, (w, p) in enumerate(specs)]
    result = BALANCER.place(insts, todo, {})
    by_id = {i.server_id: i for i in insts}
    by_stream = {s.stream_id: s for s in todo}
    assert {a.stream_id for a in result.assignments} | set(result.unassigned) == set(by_stream)
    assert all(by_id[a.server_id].eligible for a in result.assignments)
    assert all(result.loads[i.server_id] <= i.capacity for i in insts)
    priorities = [by_stream[sid].priority for sid in result.unassigned]
    assert priorities == sorted(priorities, reverse=True)
    for sid in result.unassigned:
        s = by_stream[sid]
        assert not any(
            allowed(i, s) and result.loads[i.server_id] + s.weight <= i.capacity for i in insts
        )


@settings(max_examples=300, deadline=None)
@given(instances(), st.lists(st.integers(0, 5), max_size=60))
def test_place_unit_weights_never_skips_a_higher_priority(
    insts: list[InstanceView], priorities: list[int]
) -> None:
    todo = [StreamView(f"n{k:03d}", 1, p) for k, p in enumerate(priorities)]
    result = BALANCER.place(insts, todo, {})
    placed = [int(a.stream_id[1:]) for a in result.assignments]
    left = [int(sid[1:]) for sid in result.unassigned]
    if placed and left:
        assert min(priorities[k] for k in placed) >= max(priorities[k] for k in left)
