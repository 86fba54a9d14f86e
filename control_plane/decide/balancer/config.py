"""The balancer's thresholds, as one frozen value passed in (``DecideConfig.balancer``).

A plain pydantic model, not a ``BaseSettings``: the pure core reads no environment. The
orchestrator process reads ``STREAMPLANE_BALANCER_*`` in its own settings
(:class:`control_plane.orchestrator.settings.OrchestratorSettings`) and builds this value.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from events.control import MAX_PLAN_MOVES


class BalancerConfig(BaseModel):
    """Thresholds of :class:`~control_plane.decide.balancer.SmartLoadBalancer`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    imbalance_threshold: float = Field(
        default=0.10,
        gt=0,
        description="An instance is overloaded when its load exceeds its target by more than "
        "this share of the target (and by more than imbalance_min_weight).",
    )
    imbalance_min_weight: int = Field(
        default=1,
        ge=0,
        description="Excess (weight units) at or below which an instance is never overloaded, "
        "so rounding by one stream does not trigger a rebalance.",
    )
    candidate_limit: int = Field(
        default=8,
        ge=1,
        description="How many best receivers are examined per stream before settling; more "
        "finds anti-affinity-free homes more often, at some cost in time.",
    )
    max_moves: int = Field(
        default=MAX_PLAN_MOVES,
        ge=0,
        description="Cap on the moves of one plan (the RebalancePlanned event's limit).",
    )
