"""The seed's SystemHealth, computed from a state (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import pstdev

from projections.fold.state import ClusterState, HealthStatus, InstanceStatus


@dataclass(frozen=True, slots=True)
class SystemHealth:
    """Totals and three scores in [0, 1] (1 is best)."""

    total_instances: int
    active_instances: int
    total_streams: int
    assigned_streams: int
    running_streams: int
    unassigned_streams: int
    parked_streams: int
    load_balance_score: float
    consistency_score: float
    performance_score: float
    maintenance: bool

    def overall_health(self) -> HealthStatus:
        if self.maintenance or self.consistency_score < 0.5:
            return HealthStatus.CRITICAL
        if self.total_streams and self.active_instances == 0:
            return HealthStatus.CRITICAL
        worst = min(self.load_balance_score, self.consistency_score, self.performance_score)
        if self.unassigned_streams or self.parked_streams or worst < 0.8:
            return HealthStatus.DEGRADED
        return HealthStatus.HEALTHY

    def needs_intervention(self) -> bool:
        return self.overall_health() is not HealthStatus.HEALTHY


def system_health(state: ClusterState, *, consistency: float | None = None) -> SystemHealth:
    """Summarise ``state`` into the seed's SystemHealth. ``consistency``: the score of a
    consistency check of the views against it (docs/consistency.md); the lower of it and the
    fold's own finding-based score counts."""
    live = [i for i in state.instances.values() if i.status is InstanceStatus.ACTIVE]
    factors = [i.calculate_load_factor() for i in live if i.max_streams > 0]
    balance = max(0.0, 1.0 - pstdev(factors)) if len(factors) > 1 else 1.0
    streams = list(state.streams.values())
    assigned = sum(1 for s in streams if s.server_id is not None)
    running = sum(1 for s in streams if s.status.value in ("running", "migrating"))
    parked = sum(1 for s in streams if s.status.value == "failed")
    # consistency: recent invariant findings weigh most; any at all costs something
    own = 1.0 if state.finding_count == 0 else max(0.0, 0.9 - 0.1 * len(state.findings))
    consistency = own if consistency is None else min(own, max(0.0, consistency))
    errors = [i.performance_metrics.error_rate for i in live]
    performance = 1.0 - (sum(errors) / len(errors)) if errors else 1.0
    return SystemHealth(
        total_instances=sum(1 for i in state.instances.values() if i.status.value != "left"),
        active_instances=len(live),
        total_streams=len(streams),
        assigned_streams=assigned,
        running_streams=running,
        unassigned_streams=sum(1 for s in streams if s.status.value == "unassigned"),
        parked_streams=parked,
        load_balance_score=round(balance, 6),
        consistency_score=round(consistency, 6),
        performance_score=round(performance, 6),
        maintenance=state.maintenance,
    )
