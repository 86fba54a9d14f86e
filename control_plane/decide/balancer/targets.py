"""Target load per instance: proportional to effective capacity, integral, never above capacity.

Pure integer arithmetic (largest-remainder rounding), so the targets are exact and the same on
every machine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from control_plane.decide.balancer.model import InstanceView

# floor(100 * 0.29) must be 29, not 28 (0.29 is stored as 0.28999...).
_FLOAT_SLACK = 1e-9


def effective_capacity(instance: InstanceView) -> int:
    """floor(capacity * perf_factor) for an eligible instance, 0 for an ineligible one."""
    if not instance.eligible:
        return 0
    scaled = math.floor(instance.capacity * instance.perf_factor + _FLOAT_SLACK)
    return max(0, min(instance.capacity, scaled))


def apportion(total: int, weights: Sequence[int], tie: Sequence[tuple[int, str]]) -> list[int]:
    """Split ``total`` proportionally to ``weights`` with largest-remainder rounding.

    The shares sum to ``total`` (when any weight is positive) and each share is at most
    ceil(total * w / sum(weights)); if ``total <= sum(weights)`` each share is at most its
    weight. Equal remainders go to the smallest ``tie`` key first.
    """
    denominator = sum(weights)
    if denominator <= 0 or total <= 0:
        return [0] * len(weights)
    shares = [total * w // denominator for w in weights]
    remainders = [total * w % denominator for w in weights]
    missing = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], tie[i]))
    for i in order[:missing]:
        shares[i] += 1
    return shares


def compute_targets(
    instances: Sequence[InstanceView], total: int, loads: Mapping[str, int]
) -> tuple[dict[str, int], dict[str, int]]:
    """Targets and effective capacities per server_id for a total load of ``total``.

    Up to the total effective capacity E, targets are proportional to effective capacity.
    Between E and the total capacity C, the part above E is shared in proportion to the
    headroom (capacity - effective capacity). Above C every eligible instance is targeted at its
    capacity and the rest cannot be placed. Remainder ties favour the instance that holds more
    now (then the smaller id), so rounding never causes a move by itself.
    """
    effective = [effective_capacity(i) for i in instances]
    capacities = [i.capacity if i.eligible else 0 for i in instances]
    tie = [(-loads.get(i.server_id, 0), i.server_id) for i in instances]
    total_effective = sum(effective)
    if total <= total_effective:
        shares = apportion(total, effective, tie)
    elif total < sum(capacities):
        headroom = [c - e for c, e in zip(capacities, effective, strict=True)]
        extra = apportion(total - total_effective, headroom, tie)
        shares = [e + x for e, x in zip(effective, extra, strict=True)]
    else:
        shares = capacities
    ids = [i.server_id for i in instances]
    return dict(zip(ids, shares, strict=True)), dict(zip(ids, effective, strict=True))
