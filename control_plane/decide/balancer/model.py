"""The balancer's values: its inputs (views of instances and streams) and its results.

Plain ``NamedTuple``s rather than pydantic models: the balancer handles 100k streams per call
and the views are built by code that already validated its data (the fold), so per-field
validation here would only cost time. :mod:`control_plane.decide.balancer.index` checks the
few rules the algorithm depends on (unique ids, weight >= 1, capacity >= 0, perf_factor in
(0, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

REASON_REBALANCE = "rebalance"
REASON_DRAIN = "drain"
REASON_AFFINITY = "affinity"

_NO_TAGS: frozenset[str] = frozenset()


class InstanceView(NamedTuple):
    """What the balancer needs to know about one worker instance.

    ``capacity`` is a hard limit in weight units. ``eligible`` is False for draining,
    quarantined, suspected and failed instances: they receive nothing, and whatever they hold
    is moved away ("drain"). ``perf_factor`` in (0, 1] scales the capacity used for *targets*
    (an instance with worse latency or CPU per stream gets a smaller share); the hard limit
    stays ``capacity``.
    """

    server_id: str
    capacity: int
    eligible: bool = True
    zone: str | None = None
    tags: frozenset[str] = _NO_TAGS
    perf_factor: float = 1.0


class StreamView(NamedTuple):
    """What the balancer needs to know about one stream.

    ``owner`` is the instance it runs on, or None when it needs a home (new, or its instance
    failed). ``zone`` and ``required_tags`` are hard constraints: the stream may only run on an
    instance in that zone carrying all those tags. ``anti_affinity`` names a soft group: streams
    of one group prefer instances that hold none of the group yet. ``movable`` is False while the
    stream is migrating, so a plan never touches it.
    """

    stream_id: str
    weight: int = 1
    priority: int = 0
    owner: str | None = None
    zone: str | None = None
    anti_affinity: str | None = None
    movable: bool = True
    required_tags: frozenset[str] = _NO_TAGS


class Assignment(NamedTuple):
    """A stream without an owner placed on an instance."""

    stream_id: str
    server_id: str


class Move(NamedTuple):
    """One planned migration; the field names match ``events.control.PlannedMove``.

    ``gain`` is the expected drop in total over-target load (weight units) this move brings.
    """

    stream_id: str
    from_server: str
    to_server: str
    reason: str
    gain: float


class Placement(NamedTuple):
    """Result of :meth:`SmartLoadBalancer.place`.

    ``unassigned`` lists the streams that fit nowhere, highest priority first. ``loads`` is the
    load of every given instance after the assignments.
    """

    assignments: tuple[Assignment, ...]
    unassigned: tuple[str, ...]
    loads: Mapping[str, int]


class DistributionPlan(NamedTuple):
    """Target load per instance, plus placements for the streams that have no owner.

    Targets are proportional to effective capacity (largest-remainder rounding, so they sum to
    the total load while it fits), never above ``capacity``, and 0 for ineligible instances.
    """

    targets: Mapping[str, int]
    effective_capacity: Mapping[str, int]
    placements: tuple[Assignment, ...]
    unassigned: tuple[str, ...]
    total_load: int
    ideal_load_factor: float


class RebalancePlan(NamedTuple):
    """The moves that bring the current placement to the targets, and how good the result is.

    ``lower_bound`` is sum(max(0, load_i - target_i)) in weight units, counted after the
    placements (pinned streams excluded): the least weight any plan must move to reach the
    targets, hence the fewest moves with unit weights; ``moved_weight`` is what this plan
    moves. ``score_*`` is the share of the total load sitting above its instance's target
    (0 = on target). Load factors are load / effective capacity over eligible instances;
    ``ideal_load_factor`` = spreadable load / total effective capacity. ``stranded`` lists
    streams that had to move (drain, affinity) but fit nowhere.
    """

    moves: tuple[Move, ...]
    lower_bound: int
    moved_weight: int
    score_before: float
    score_after: float
    max_load_factor: float
    ideal_load_factor: float
    targets: Mapping[str, int]
    loads_after: Mapping[str, int]
    placements: tuple[Assignment, ...]
    unassigned: tuple[str, ...]
    stranded: tuple[str, ...]
