"""The balancer's inputs checked and grouped once per call, and the orders it works in.

Every public method of :class:`~control_plane.decide.balancer.SmartLoadBalancer` starts here:
the views are validated (the few rules the algorithm depends on: unique ids, weight >= 1,
capacity >= 0, perf_factor in (0, 1]) and grouped by owner, so the plan's phases never look
a stream up twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import NamedTuple

from control_plane.decide.balancer.errors import BalancerInputError
from control_plane.decide.balancer.model import InstanceView, StreamView


class Index(NamedTuple):
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


def check_instances(instances: Iterable[InstanceView]) -> dict[str, InstanceView]:
    """The instances by id; raises :class:`BalancerInputError` naming the first bad field."""
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


def index(instances: Sequence[InstanceView], streams: Iterable[StreamView]) -> Index:
    """Validate and group: loads and streams per owner; unknown owners count as no owner."""
    by_id = check_instances(instances)
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
    return Index(tuple(instances), by_id, loads, owned, unowned, total, pinned, _groups(owned))


def _groups(owned: dict[str, list[StreamView]]) -> dict[str, dict[str, int]]:
    groups: dict[str, dict[str, int]] = {}
    for sid, held in owned.items():
        for s in held:
            if s.anti_affinity is not None:
                counts = groups.setdefault(sid, {})
                counts[s.anti_affinity] = counts.get(s.anti_affinity, 0) + 1
    return groups


def fits(instance: InstanceView, stream: StreamView) -> bool:
    """Whether the stream's hard constraints (zone, tags) allow this instance."""
    if stream.zone is not None and instance.zone != stream.zone:
        return False
    return stream.required_tags <= instance.tags


def placement_order(stream: StreamView) -> tuple[int, int, str]:
    """Highest priority first; within a priority the heaviest first, as it is hardest to fit."""
    return (-stream.priority, -stream.weight, stream.stream_id)


#: cheapest first: the lightest, then the least important, then by id (attrgetter: C speed)
give_away_order = attrgetter("weight", "priority", "stream_id")


def ids(streams: Iterable[StreamView]) -> tuple[str, ...]:
    return tuple(s.stream_id for s in streams)
