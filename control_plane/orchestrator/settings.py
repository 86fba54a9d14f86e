"""Settings of the orchestrator process (env prefix ``STREAMPLANE_``), read once in ``main``.

This is where the environment is read; the pure core gets the result as one frozen
:class:`DecideConfig` (``decide_config()``), the balancer's thresholds included
(``STREAMPLANE_BALANCER_*``: the names, defaults and bounds of ``BalancerConfig``).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from control_plane.checker_run import CheckSettings
from control_plane.decide.balancer import BalancerConfig
from control_plane.decide.config import DecideConfig, FailureDetector
from kafka_auth import KafkaClientSettings
from telemetry.metrics import MetricsAddress


class OrchestratorSettings(KafkaClientSettings):
    """The orchestrator process (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    topic_prefix: str = "streamplane"
    #: this process's name in LeaderElected; default: hostname-pid
    node_id: str | None = None
    #: fixed per cluster so that a new leader fences the old one
    transactional_id: str | None = None
    cycle_interval: float = Field(default=0.1, gt=0, description="seconds between decide cycles")
    balance_check_interval: float = Field(default=5.0, gt=0)
    session_timeout_ms: int = Field(default=6000, ge=1000)
    heartbeat_interval_ms: int = Field(default=1000, ge=100)
    request_timeout_s: float = Field(default=10.0, gt=0)
    #: longest wait between two attempts to reach Kafka at start-up (back-off doubles to it)
    startup_retry_max: float = Field(default=30.0, gt=0)
    suspect_after: float = 2.5
    fail_after: float = 5.0
    max_in_flight: int = 64
    max_in_flight_per_instance: int = 8
    migration_timeout: float = 30.0
    poison_threshold: int = 3
    auto_rebalance: bool = True
    mass_failure_share: float = Field(default=0.5, gt=0, le=1)
    mass_failure_min: int = Field(default=3, ge=1)
    observer_max_lag: float = Field(default=3.0, gt=0)
    quarantine_after: int = Field(default=3, ge=1)
    flap_window: float = Field(default=300.0, gt=0)
    quarantine_base: float = Field(default=30.0, gt=0)
    quarantine_max: float = Field(default=600.0, gt=0)
    perf_sample_interval: float = Field(default=30.0, gt=0)
    rebalance_cooldown: float = Field(default=10.0, ge=0)
    #: the leader snapshots its state every this many events ...
    snapshot_every: int = Field(default=10_000, ge=1)
    #: ... or this many seconds after the last snapshot, if events arrived since
    snapshot_interval: float = Field(default=300.0, gt=0)
    #: seconds a standby waits for the latest snapshot before replaying the whole log
    snapshot_load_timeout: float = Field(default=60.0, gt=0)
    #: failure detection: "fixed" thresholds, or "phi" accrual (see DecideConfig)
    failure_detector: FailureDetector = "fixed"
    phi_suspect: float = Field(default=8.0, ge=1, le=50)
    #: inter-arrival samples kept per incarnation (``Liveness.phi_window``)
    phi_window: int = Field(default=100, ge=2, le=10_000)
    phi_min_std_ms: float = Field(default=100.0, gt=0, le=60_000)
    phi_acceptable_pause_ms: float = Field(default=1000.0, ge=0, le=600_000)
    phi_min_samples: int = Field(default=10, ge=2)
    #: the balancer (``BalancerConfig``; env ``STREAMPLANE_BALANCER_*``, same bounds)
    balancer_imbalance_threshold: float = Field(default=0.10, gt=0)
    balancer_imbalance_min_weight: int = Field(default=1, ge=0)
    balancer_candidate_limit: int = Field(default=8, ge=1)
    balancer_max_moves: int = Field(default=BalancerConfig().max_moves, ge=0)
    #: append each leader cycle's inputs and outputs to this JSONL file (off when unset);
    #: docs/orchestrator.md, "Decision goldens"
    record_decisions: Path | None = None
    #: write each leader cycle's mark (its cut of the heartbeat and command topics, its
    #: ``now``) to ``<prefix>.cycles``: what ``streamplane simulate`` replays (docs/audit.md)
    record_cycles: bool = True
    #: seconds idle cycles' marks wait for a transaction before they are written alone
    cycle_marks_flush: float = Field(default=1.0, gt=0)
    #: count heartbeats of server ids without an enrolled key, unsigned (a WARNING at start
    #: says so); enrolled and revoked ids are checked either way (docs/orchestrator.md)
    open_enrollment: bool = False
    #: seconds a signed heartbeat may be old (by its own ``time``) and still count: bounds
    #: replays, so it must cover the workers' clock skew
    heartbeat_max_age: float = Field(default=60.0, gt=0)
    #: serve Prometheus metrics on ``host:port`` (empty: no endpoint); docs/metrics.md
    metrics_address: MetricsAddress = ""
    #: seconds a failover is watched for its streams to run elsewhere before it counts as
    #: unfinished (``streamplane_failovers_unfinished_total``)
    metrics_failover_horizon: float = Field(default=600.0, gt=0)
    #: the leader's periodic consistency check (docs/consistency.md): incremental every this
    #: many seconds, full (the log replayed and compared with the state) every the other;
    #: 0 turns one off
    consistency_check_interval: float = Field(default=60.0, ge=0)
    consistency_full_interval: float = Field(default=3600.0, ge=0)
    #: the checker's bounds (env ``STREAMPLANE_CHECK_<FIELD>``)
    check: CheckSettings = Field(default_factory=CheckSettings)

    @model_validator(mode="after")
    def _phi_window_holds_min_samples(self) -> Self:
        if self.phi_min_samples > self.phi_window:
            raise ValueError(
                f"phi_min_samples ({self.phi_min_samples}) must be <= phi_window "
                f"({self.phi_window}): the window could never hold enough samples"
            )
        return self

    def decide_config(self) -> DecideConfig:
        return DecideConfig(
            suspect_after=timedelta(seconds=self.suspect_after),
            fail_after=timedelta(seconds=self.fail_after),
            max_in_flight=self.max_in_flight,
            max_in_flight_per_instance=self.max_in_flight_per_instance,
            migration_timeout=timedelta(seconds=self.migration_timeout),
            poison_threshold=self.poison_threshold,
            auto_rebalance=self.auto_rebalance,
            mass_failure_share=self.mass_failure_share,
            mass_failure_min=self.mass_failure_min,
            observer_max_lag=timedelta(seconds=self.observer_max_lag),
            quarantine_after=self.quarantine_after,
            flap_window=timedelta(seconds=self.flap_window),
            quarantine_base=timedelta(seconds=self.quarantine_base),
            quarantine_max=timedelta(seconds=self.quarantine_max),
            perf_sample_interval=timedelta(seconds=self.perf_sample_interval),
            rebalance_cooldown=timedelta(seconds=self.rebalance_cooldown),
            failure_detector=self.failure_detector,
            phi_suspect=self.phi_suspect,
            phi_min_std=timedelta(milliseconds=self.phi_min_std_ms),
            phi_acceptable_pause=timedelta(milliseconds=self.phi_acceptable_pause_ms),
            phi_min_samples=self.phi_min_samples,
            balancer=BalancerConfig(
                imbalance_threshold=self.balancer_imbalance_threshold,
                imbalance_min_weight=self.balancer_imbalance_min_weight,
                candidate_limit=self.balancer_candidate_limit,
                max_moves=self.balancer_max_moves,
            ),
        )

    def liveness_phi_window(self) -> int:
        """``Liveness.phi_window`` for this process: none kept with the fixed detector."""
        return self.phi_window if self.failure_detector == "phi" else 0
