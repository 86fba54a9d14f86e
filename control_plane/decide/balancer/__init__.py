"""The pure balancer: targets, placements and minimal-movement rebalance plans.

See docs/balancer.md. Import from here; the submodules are internal.
"""

from control_plane.decide.balancer.config import BalancerConfig
from control_plane.decide.balancer.core import SmartLoadBalancer
from control_plane.decide.balancer.errors import BalancerError, BalancerInputError
from control_plane.decide.balancer.model import (
    REASON_AFFINITY,
    REASON_DRAIN,
    REASON_REBALANCE,
    Assignment,
    DistributionPlan,
    InstanceView,
    Move,
    Placement,
    RebalancePlan,
    StreamView,
)
from control_plane.decide.balancer.targets import effective_capacity

__all__ = [
    "REASON_AFFINITY",
    "REASON_DRAIN",
    "REASON_REBALANCE",
    "Assignment",
    "BalancerConfig",
    "BalancerError",
    "BalancerInputError",
    "DistributionPlan",
    "InstanceView",
    "Move",
    "Placement",
    "RebalancePlan",
    "SmartLoadBalancer",
    "StreamView",
    "effective_capacity",
]
