"""Concrete examples of the SmartLoadBalancer: the behaviour a reader checks by hand."""

from __future__ import annotations

import pytest

from control_plane.decide.balancer import (
    REASON_AFFINITY,
    REASON_DRAIN,
    REASON_REBALANCE,
    Assignment,
    BalancerConfig,
    BalancerInputError,
    InstanceView,
    SmartLoadBalancer,
    StreamView,
    effective_capacity,
)
from events.control import PlannedMove

BALANCER = SmartLoadBalancer(BalancerConfig())


def on(owner: str, count: int, *, prefix: str = "s", weight: int = 1) -> list[StreamView]:
    return [StreamView(f"{prefix}{owner}-{n}", weight, owner=owner) for n in range(count)]


def test_new_instance_takes_exactly_the_excess_cheapest_first() -> None:
    insts = [InstanceView("a", 10), InstanceView("b", 10)]
    streams = [
        StreamView("heavy", 3, owner="a"),
        StreamView("light-important", 1, priority=5, owner="a"),
        StreamView("light-1", 1, owner="a"),
        StreamView("light-2", 1, owner="a"),
        StreamView("mid", 2, owner="a"),
    ]
    plan = BALANCER.plan(insts, streams)
    assert dict(plan.targets) == {"a": 4, "b": 4}
    assert plan.lower_bound == 4
    # weight 1 before 2; among weight 1 the low priority ones first, then by id
    assert [m.stream_id for m in plan.moves] == ["light-1", "light-2", "light-important"]
    assert {(m.from_server, m.to_server, m.reason) for m in plan.moves} == {
        ("a", "b", REASON_REBALANCE)
    }
    assert [m.gain for m in plan.moves] == [1.0, 1.0, 1.0]
    assert dict(plan.loads_after) == {"a": 5, "b": 3}
    assert plan.score_before == 0.5 and plan.score_after == 0.125


def test_uniform_scale_out_moves_the_lower_bound() -> None:
    insts = [InstanceView(f"i{n}", 100) for n in range(4)]
    streams = on("i0", 30) + on("i1", 30) + on("i2", 30)
    plan = BALANCER.plan(insts, streams)
    # targets 23, 23, 22, 22: the +1s go to instances that already hold more
    assert dict(plan.targets) == {"i0": 23, "i1": 23, "i2": 22, "i3": 22}
    assert plan.lower_bound == len(plan.moves) == 22  # 7 + 7 + 8
    assert sorted(plan.loads_after.values()) == [22, 22, 23, 23]
    assert plan.max_load_factor == pytest.approx(0.23)
    assert plan.ideal_load_factor == pytest.approx(0.225)


def test_rounding_favours_the_instance_that_already_holds_more() -> None:
    insts = [InstanceView("a", 10), InstanceView("b", 10)]
    plan = BALANCER.plan(insts, on("a", 2) + on("b", 3))
    assert dict(plan.targets) == {"a": 2, "b": 3}
    assert plan.moves == ()


def test_drain_moves_everything_movable_off_an_ineligible_instance() -> None:
    insts = [InstanceView("a", 10, eligible=False), InstanceView("b", 10), InstanceView("c", 10)]
    streams = [*on("a", 4), StreamView("migrating", owner="a", movable=False)]
    plan = BALANCER.plan(insts, streams)
    assert len(plan.moves) == 4
    assert all(m.reason == REASON_DRAIN and m.from_server == "a" for m in plan.moves)
    assert plan.loads_after == {"a": 1, "b": 2, "c": 2}
    assert plan.targets["a"] == 0 and plan.stranded == ()


def test_drain_without_room_reports_stranded_streams_by_priority() -> None:
    insts = [InstanceView("a", 10, eligible=False), InstanceView("b", 2)]
    streams = [StreamView(f"p{p}", priority=p, owner="a") for p in range(4)]
    plan = BALANCER.plan(insts, streams)
    assert sorted(m.stream_id for m in plan.moves) == ["p2", "p3"]
    assert plan.stranded == ("p1", "p0")


def test_performance_factor_lowers_the_target_not_the_hard_limit() -> None:
    slow, fast = InstanceView("slow", 10, perf_factor=0.5), InstanceView("fast", 10)
    assert effective_capacity(slow) == 5
    assert effective_capacity(InstanceView("x", 100, perf_factor=0.29)) == 29
    target = BALANCER.calculate_optimal_distribution([slow, fast], on("new", 12))
    assert dict(target.effective_capacity) == {"slow": 5, "fast": 10}
    assert dict(target.targets) == {"slow": 4, "fast": 8}
    # above the total effective capacity the rest goes to the headroom, up to capacity
    target = BALANCER.calculate_optimal_distribution([slow, fast], on("new", 18))
    assert dict(target.targets) == {"slow": 8, "fast": 10}
    assert target.ideal_load_factor == pytest.approx(18 / 15)


def test_unowned_and_unknown_owner_streams_are_placed_not_moved() -> None:
    insts = [InstanceView("a", 3), InstanceView("b", 3)]
    streams = [StreamView("x"), StreamView("y", owner="gone"), StreamView("z", owner="a")]
    plan = BALANCER.plan(insts, streams)
    assert plan.moves == ()
    # targets a=2 (it already holds more), b=1; x goes first (same priority and weight: by id)
    assert plan.placements == (Assignment("x", "a"), Assignment("y", "b"))
    assert plan.unassigned == ()


def test_place_respects_priority_when_short_and_reports_the_rest_in_order() -> None:
    insts = [InstanceView("a", 2), InstanceView("b", 1), InstanceView("off", 50, eligible=False)]
    todo = [StreamView(f"p{p}", priority=p) for p in range(5)]
    result = BALANCER.place(insts, todo, {"a": 0, "b": 0})
    assert sorted(a.stream_id for a in result.assignments) == ["p2", "p3", "p4"]
    assert result.unassigned == ("p1", "p0")
    assert dict(result.loads) == {"a": 2, "b": 1, "off": 0}


def test_place_counts_current_loads_and_owner_is_ignored() -> None:
    insts = [InstanceView("a", 10), InstanceView("b", 10)]
    result = BALANCER.place(insts, [StreamView("f1", owner="dead")], {"a": 9, "b": 2})
    assert result.assignments == (Assignment("f1", "b"),)


def test_zone_affinity_is_a_hard_constraint_and_fixed_by_moves() -> None:
    insts = [InstanceView("a1", 5, zone="a"), InstanceView("b1", 5, zone="b")]
    streams = [StreamView("wrong", zone="a", owner="b1"), StreamView("new", zone="b")]
    plan = BALANCER.plan(insts, streams)
    assert [(m.stream_id, m.to_server, m.reason) for m in plan.moves] == [
        ("wrong", "a1", REASON_AFFINITY)
    ]
    assert plan.placements == (Assignment("new", "b1"),)
    tagged = BALANCER.place(
        [InstanceView("plain", 9), InstanceView("gpu", 1, tags=frozenset({"gpu"}))],
        [StreamView("t", required_tags=frozenset({"gpu"}))],
        {},
    )
    assert tagged.assignments == (Assignment("t", "gpu"),)


def test_a_must_move_stream_waits_for_room_freed_later_in_its_pass_and_moves_once() -> None:
    gpu = frozenset({"gpu"})
    insts = [InstanceView("a", 10), InstanceView("b", 10, zone="b"), InstanceView("g", 2, tags=gpu)]
    streams = [
        StreamView("x", 1, priority=1, owner="a", required_tags=gpu),  # first, but g is full
        StreamView("y", 2, owner="g", zone="b"),  # leaves g after x was tried
        *(StreamView(f"pin{n}", owner="a", movable=False) for n in range(5)),  # a over target
    ]
    plan = BALANCER.plan(insts, streams)
    # x moves once, for its constraint; it used to be moved as a rebalance and then again
    assert [(m.stream_id, m.to_server, m.reason) for m in plan.moves] == [
        ("y", "b", REASON_AFFINITY),
        ("x", "g", REASON_AFFINITY),
    ]
    assert dict(plan.loads_after) == {"a": 5, "b": 2, "g": 1}
    assert plan.stranded == ()


def test_second_chance_places_again_after_a_relocation_frees_room() -> None:
    gpu = frozenset({"gpu"})
    insts = [InstanceView("a", 10), InstanceView("b", 4, zone="b"), InstanceView("g", 3, tags=gpu)]
    streams = [
        *on("b", 4),  # b is full until it gives two streams to a
        StreamView("y", 2, owner="g", zone="b"),  # stranded until then; it holds g's room
        StreamView("u", 2, required_tags=gpu),  # fits on g only once y has left
    ]
    plan = BALANCER.plan(insts, streams)
    assert ("y", "b", REASON_AFFINITY) in [(m.stream_id, m.to_server, m.reason) for m in plan.moves]
    assert plan.placements == (Assignment("u", "g"),)
    assert plan.unassigned == () and plan.stranded == ()
    assert dict(plan.loads_after) == {"a": 2, "b": 4, "g": 2}


def test_anti_affinity_spreads_a_group() -> None:
    insts = [InstanceView(f"i{n}", 10) for n in range(3)]
    todo = [StreamView(f"r{n}", anti_affinity="db") for n in range(3)]
    existing = [StreamView("r-old", anti_affinity="db", owner="i0")]
    result = BALANCER.place(insts, todo, {"i0": 1}, existing=existing)
    # four of the group on three instances: i1 and i2 first, the fourth where the load is due
    assert [a.server_id for a in result.assignments] == ["i1", "i2", "i0"]
    spread = BALANCER.place(insts, todo, {})
    assert len({a.server_id for a in spread.assignments}) == 3


def test_weighted_plan_reports_load_factors() -> None:
    insts = [InstanceView("big", 20), InstanceView("small", 10)]
    streams = [StreamView(f"w{n}", 3, owner="small") for n in range(3)]
    plan = BALANCER.plan(insts, streams)
    assert plan.ideal_load_factor == pytest.approx(9 / 30)
    assert dict(plan.targets) == {"big": 6, "small": 3}
    assert dict(plan.loads_after) == {"big": 6, "small": 3}
    assert plan.max_load_factor == pytest.approx(0.3)


def test_detect_imbalance() -> None:
    insts = [InstanceView("a", 100), InstanceView("b", 100)]
    assert not BALANCER.detect_imbalance(insts, on("a", 50) + on("b", 50))
    assert not BALANCER.detect_imbalance(insts, on("a", 52) + on("b", 48))  # within 10 %
    assert BALANCER.detect_imbalance(insts, on("a", 60) + on("b", 40))
    drained = [InstanceView("a", 100, eligible=False), InstanceView("b", 100)]
    assert BALANCER.detect_imbalance(drained, on("a", 1) + on("b", 1))
    strict = SmartLoadBalancer(BalancerConfig(imbalance_threshold=0.01))
    assert strict.detect_imbalance(insts, on("a", 52) + on("b", 48))


def test_moves_convert_to_the_event_contract() -> None:
    plan = BALANCER.plan([InstanceView("a", 4), InstanceView("b", 4)], on("a", 4))
    events = [PlannedMove(**m._asdict()) for m in plan.moves]
    assert [e.to_server for e in events] == ["b", "b"]


def test_max_moves_caps_the_plan() -> None:
    capped = SmartLoadBalancer(BalancerConfig(max_moves=3))
    plan = capped.plan([InstanceView("a", 20), InstanceView("b", 20)], on("a", 20))
    assert len(plan.moves) == 3 and plan.lower_bound == 10


@pytest.mark.parametrize(
    ("instances", "streams", "field"),
    [
        ([InstanceView("a", 1), InstanceView("a", 2)], [], "server_id"),
        ([InstanceView("a", -1)], [], "capacity"),
        ([InstanceView("a", 1, perf_factor=0.0)], [], "perf_factor"),
        ([InstanceView("a", 1, perf_factor=1.5)], [], "perf_factor"),
        ([InstanceView("a", 1)], [StreamView("s"), StreamView("s")], "stream_id"),
        ([InstanceView("a", 1)], [StreamView("s", weight=0)], "weight"),
    ],
)
def test_bad_input_is_rejected_naming_the_field(
    instances: list[InstanceView], streams: list[StreamView], field: str
) -> None:
    with pytest.raises(BalancerInputError) as caught:
        BALANCER.plan(instances, streams)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert caught.value.retriable is False
