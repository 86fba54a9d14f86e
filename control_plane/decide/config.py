"""Every threshold of the pure decision function, passed in as one frozen value.

The balancer's thresholds are part of it (``balancer``), so ``decide`` reads nothing but its
arguments: the same config, state and inputs always give the same events.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from control_plane.decide.balancer import BalancerConfig

#: the failure detectors ``decide`` knows (docs/orchestrator.md, "Failure detection")
FailureDetector = Literal["fixed", "phi"]


class DecideConfig(BaseModel):
    """Every threshold ``decide`` uses; passed in, never read from the environment there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    suspect_after: timedelta = timedelta(seconds=2.5)
    fail_after: timedelta = timedelta(seconds=5)
    #: a share of silent instances above this (with at least ``mass_failure_min`` silent)
    #: means the observer is blind: freeze failovers (maintenance mode)
    mass_failure_share: float = Field(default=0.5, gt=0, le=1)
    mass_failure_min: int = Field(default=3, ge=1)
    #: heartbeat-consumption lag past this also means the observer is blind
    observer_max_lag: timedelta = timedelta(seconds=3)
    max_in_flight: int = Field(default=64, ge=1)
    max_in_flight_per_instance: int = Field(default=8, ge=1)
    migration_timeout: timedelta = timedelta(seconds=30)
    #: a stream that failed to start on this many distinct instances is parked
    poison_threshold: int = Field(default=3, ge=1)
    #: failures (with the previous one within ``flap_window``) that quarantine an instance
    quarantine_after: int = Field(default=3, ge=1)
    flap_window: timedelta = timedelta(minutes=5)
    quarantine_base: timedelta = timedelta(seconds=30)
    quarantine_max: timedelta = timedelta(minutes=10)
    perf_sample_interval: timedelta = timedelta(seconds=30)
    auto_rebalance: bool = True
    rebalance_cooldown: timedelta = timedelta(seconds=10)
    #: "fixed": suspect after ``suspect_after`` of silence; "phi": when the phi accrual
    #: level of the incarnation's own heartbeat rhythm reaches ``phi_suspect`` (failure
    #: stays at ``fail_after`` of silence with either)
    failure_detector: FailureDetector = "fixed"
    phi_suspect: float = Field(default=8.0, ge=1, le=50)
    #: floor of the inter-arrival standard deviation: a too regular history would make
    #: any small delay look like a failure
    phi_min_std: timedelta = timedelta(milliseconds=100)
    #: added to the mean interval: a pause this long (a lost heartbeat, a GC) is normal
    phi_acceptable_pause: timedelta = timedelta(seconds=1)
    #: inter-arrival samples an incarnation needs before phi judges it (fixed until then)
    phi_min_samples: int = Field(default=10, ge=2)
    #: the balancer's thresholds (placements, plans, imbalance detection)
    balancer: BalancerConfig = BalancerConfig()

    @model_validator(mode="after")
    def _phi_durations(self) -> Self:
        if self.phi_min_std <= timedelta(0):
            raise ValueError(f"phi_min_std must be > 0, got {self.phi_min_std}")
        if self.phi_acceptable_pause < timedelta(0):
            raise ValueError(f"phi_acceptable_pause must be >= 0, got {self.phi_acceptable_pause}")
        return self
