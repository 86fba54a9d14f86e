"""Settings of the orchestrator process and of its pure decision function."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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


class OrchestratorSettings(BaseSettings):
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
        )
