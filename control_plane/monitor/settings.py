"""Settings of the monitor process (env prefix ``STREAMPLANE_``), read once in ``main``.

Three groups: what to watch (Kafka, optionally PostgreSQL and ``/metrics`` URLs), where to
send what it finds (the alerts topic always, webhooks optionally), and the alert rules'
bounds (``STREAMPLANE_ALERT_*``: the fields of :class:`control_plane.alerts.AlertConfig`, in
seconds where the engine takes a duration). docs/alerts.md lists them all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import timedelta
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from control_plane.alerts import AlertConfig, BaselineConfig, Severity, SignalSpec
from control_plane.alerts.model import DEFAULT_SIGNALS, HEARTBEAT_LATENCY
from events.topics import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX
from kafka_auth import KafkaClientSettings
from projections.io.postgres import DatabaseSettings
from telemetry.metrics import MetricsAddress

#: the signal the monitor adds to the engine's: seconds since PostgreSQL last answered it
DATABASE_DOWN = "database_unreachable_seconds"
#: the monitor's own database calls: one attempt and short bounds, so a database that is down
#: costs one evaluation a few seconds, not the read model's minute of retries
MONITOR_DATABASE = DatabaseSettings(
    statement_timeout=5.0,
    operation_timeout=10.0,
    connect_timeout=5.0,
    attempts=1,
    breaker_threshold=3,
    breaker_reset=30.0,
    pool_min=0,
    pool_max=2,
)

Urls = Annotated[tuple[str, ...], NoDecode]


def redact(url: str) -> str:
    """``scheme://host:port/…``: a URL as it may be logged (a webhook's path or query often
    carries its secret token; user and password never appear)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    tail = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{tail}"


def quiet_http_logs() -> None:
    """httpx logs each request's full URL at INFO, and a webhook's (or a scrape target's) URL
    may hold a secret: its loggers are held at WARNING in this process, whatever the level."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


class MonitorSettings(KafkaClientSettings):
    """The monitor process (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
    #: seconds between two evaluations of the rules
    monitor_interval: float = Field(default=5.0, gt=0, le=3600)
    #: bound of any single Kafka call
    monitor_kafka_timeout: float = Field(default=30.0, gt=0)
    #: bound of gathering one signal (a slow source is skipped for that evaluation)
    monitor_source_timeout: float = Field(default=10.0, gt=0)
    #: longest wait between two attempts to reach Kafka at start-up (back-off doubles to it)
    monitor_startup_retry_max: float = Field(default=30.0, gt=0)
    #: the heartbeat latency sample of an evaluation is this quantile of the heartbeats read
    monitor_heartbeat_quantile: float = Field(default=0.9, gt=0, le=1)
    #: failovers per minute are counted over this many seconds
    monitor_failover_window: float = Field(default=300.0, gt=0)
    #: control-log positions remembered to turn a consumer offset into a seq lag
    monitor_seq_index: int = Field(default=4096, ge=2)
    #: a standby monitor takes over publishing once the publishing one has been silent to
    #: the monitors' consumer group for this long (control_plane.monitor.leadership)
    monitor_session_timeout_ms: int = Field(default=10_000, ge=1000)
    metrics_address: MetricsAddress = ""

    # --- what to watch besides Kafka (the names the read side uses, so one env serves both)
    #: PostgreSQL of the read model; unset: no read-model lag, long transactions or db checks
    database_url: str | None = None
    database_schema: str = "public"
    read_model_name: str = "read_model"
    #: the Faust projector's app id (its consumer group); default ``<prefix>-projector``
    projector_id: str | None = None
    monitor_database: DatabaseSettings = MONITOR_DATABASE
    #: a transaction open longer than this many seconds counts as long
    monitor_long_transaction_after: float = Field(default=60.0, gt=0)
    #: ``/metrics`` URLs to scrape for signals the monitor cannot derive itself
    monitor_scrape_urls: Urls = ()
    monitor_scrape_timeout: float = Field(default=5.0, gt=0)

    # --- webhooks: every transition is POSTed (CloudEvents JSON) to each URL
    monitor_webhooks: Urls = ()
    monitor_webhook_timeout: float = Field(default=5.0, gt=0)
    monitor_webhook_attempts: int = Field(default=3, ge=1, le=20)
    monitor_webhook_backoff_base: float = Field(default=0.5, gt=0)
    monitor_webhook_backoff_cap: float = Field(default=10.0, gt=0)
    monitor_webhook_breaker_threshold: int = Field(default=3, ge=1)
    monitor_webhook_breaker_reset: float = Field(default=30.0, gt=0)
    #: transitions waiting per webhook; past it the oldest is dropped (and counted)
    monitor_webhook_queue: int = Field(default=1000, ge=1)

    # --- the rules (control_plane.alerts.AlertConfig); durations in seconds
    alert_flap_window: float = Field(default=600.0, gt=0)
    alert_flap_count: int = Field(default=3, ge=1)
    alert_zone_window: float = Field(default=300.0, gt=0)
    alert_zone_count: int = Field(default=2, ge=1)
    alert_unassigned_for: float = Field(default=120.0, ge=0)
    alert_poison_instances: int = Field(default=3, ge=1)
    alert_reject_window: float = Field(default=600.0, gt=0)
    alert_reject_count: int = Field(default=3, ge=1)
    alert_dead_letter_window: float = Field(default=900.0, gt=0)
    alert_long_transactions_max: int = Field(default=0, ge=0)
    alert_refused_window: float = Field(default=900.0, gt=0)
    alert_refused_sources_max: int = Field(default=64, ge=1)
    alert_resolve_after: float = Field(default=60.0, ge=0)
    alert_rate_window: float = Field(default=900.0, gt=0)
    alert_rate_max: int = Field(default=4, ge=1)
    #: static bounds of the learned signals (they fire past these, learned or not)
    alert_heartbeat_latency_bound: float = Field(default=5.0, gt=0)
    alert_lag_bound: float = Field(default=10_000, gt=0)
    #: seconds PostgreSQL may stay unreachable before ``database_unreachable`` fires
    alert_database_down_after: float = Field(default=30.0, gt=0)
    #: learned signals judge nothing before this many samples (one per evaluation)
    alert_warmup: int = Field(default=20, ge=1)

    @field_validator("monitor_webhooks", "monitor_scrape_urls", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        # a JSON list, or comma-separated URLs
        if isinstance(value, str) and value.lstrip().startswith("["):
            return tuple(json.loads(value))
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("monitor_webhooks", "monitor_scrape_urls")
    @classmethod
    def _http_urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                # the URL itself is not repeated: a webhook URL often holds its secret
                raise ValueError(f"expected http(s)://host/... URLs, got one like {redact(url)}")
        return urls

    @property
    def projector_group(self) -> str:
        """The consumer group whose committed offset on the control log is the projector's."""
        return self.projector_id or f"{self.topic_prefix}-projector"

    def alert_config(self) -> AlertConfig:
        """The engine's :class:`AlertConfig` from these settings."""
        return AlertConfig(
            flap_window=timedelta(seconds=self.alert_flap_window),
            flap_count=self.alert_flap_count,
            zone_window=timedelta(seconds=self.alert_zone_window),
            zone_count=self.alert_zone_count,
            unassigned_for=timedelta(seconds=self.alert_unassigned_for),
            poison_instances=self.alert_poison_instances,
            reject_window=timedelta(seconds=self.alert_reject_window),
            reject_count=self.alert_reject_count,
            dead_letter_window=timedelta(seconds=self.alert_dead_letter_window),
            long_transactions_max=self.alert_long_transactions_max,
            refused_window=timedelta(seconds=self.alert_refused_window),
            refused_sources_max=self.alert_refused_sources_max,
            signals=self.signals(),
            resolve_after=timedelta(seconds=self.alert_resolve_after),
            rate_window=timedelta(seconds=self.alert_rate_window),
            rate_max=self.alert_rate_max,
        )

    def signals(self) -> tuple[SignalSpec, ...]:
        """The engine's learned signals with these bounds and warm-up, plus the database's
        reachability (a bound only: its deviation is set so the learned side cannot fire
        before the bound does)."""
        out = []
        for spec in DEFAULT_SIGNALS:
            bound = spec.baseline.bound
            if spec.name == HEARTBEAT_LATENCY:
                bound = self.alert_heartbeat_latency_bound
            elif bound is not None:  # the two lags
                bound = self.alert_lag_bound
            baseline = dataclasses.replace(spec.baseline, bound=bound, warmup=self.alert_warmup)
            out.append(spec._replace(baseline=baseline))
        down_after = self.alert_database_down_after
        out.append(
            SignalSpec(
                DATABASE_DOWN,
                "database_unreachable",
                "seconds since PostgreSQL last answered",
                "check PostgreSQL (is it running, reachable, accepting connections?); the "
                "read model and the API cannot write or read meanwhile",
                BaselineConfig(min_deviation=down_after, bound=down_after, warmup=1),
                Severity.CRITICAL,
            )
        )
        return tuple(out)
