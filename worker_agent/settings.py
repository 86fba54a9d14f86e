"""The worker's settings: one frozen object, env prefix ``STREAMPLANE_``, read once in main."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from events.ids import ID_PATTERN
from events.topics import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX
from kafka_auth import KafkaClientSettings
from telemetry.metrics import MetricsAddress

_NOT_ID = re.compile(r"[^A-Za-z0-9._:-]")


def _default_server_id() -> str:
    # The host name is a sensible identity for one worker per host; cleaned to the id alphabet.
    return (_NOT_ID.sub("-", socket.gethostname()) or "worker")[:128]


class WorkerSettings(KafkaClientSettings):
    """Everything a worker agent can be told; every timeout and threshold is named here
    (the Kafka credentials: :class:`kafka_auth.KafkaClientSettings`)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    # --- identity and capacity
    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
    server_id: str = Field(default_factory=_default_server_id, pattern=ID_PATTERN)
    max_streams: int = Field(default=10, ge=0, le=1_000_000)
    ip: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    zone: str | None = None
    tags: Annotated[tuple[str, ...], NoDecode] = ()
    #: "demo", "command", or an import path "package.module:Class"
    handler: str = "demo"
    #: serve Prometheus metrics on ``host:port`` (empty: no endpoint); docs/metrics.md
    metrics_address: MetricsAddress = ""
    #: the private key that certifies each incarnation's session, whose MAC key authenticates
    #: every heartbeat (``streamplane instances keygen``); unset:
    #: heartbeats go unsigned and count only with open enrollment (docs/worker.md, "Keys")
    worker_key_file: Path | None = None

    # --- loop timing (seconds)
    heartbeat_interval: float = Field(default=1.0, gt=0)
    reconcile_interval: float = Field(default=0.5, gt=0)
    self_check_interval: float = Field(default=5.0, gt=0)
    health_check_interval: float = Field(default=2.0, gt=0)
    desired_poll_ms: int = Field(default=500, ge=10)
    desired_max_records: int = Field(default=500, ge=1)

    # --- timeouts (seconds)
    #: stop every stream when no heartbeat has reached the brokers for this long (None: keep
    #: them running however long Kafka is away); below the orchestrator's fail_after, a
    #: worker cut off from Kafka stops its streams before they run elsewhere
    #: (worker_agent.connectivity)
    heartbeat_lease: float | None = Field(default=None, gt=0)
    kafka_timeout: float = Field(default=5.0, gt=0)
    start_timeout: float = Field(default=15.0, gt=0)
    stop_timeout: float = Field(default=10.0, gt=0)
    shutdown_grace: float = Field(default=20.0, gt=0)

    # --- back-off (seconds): failed stream starts, and Kafka (re)connection attempts
    start_retry_base: float = Field(default=1.0, gt=0)
    start_retry_cap: float = Field(default=60.0, gt=0)
    connect_retry_base: float = Field(default=0.5, gt=0)
    connect_retry_cap: float = Field(default=10.0, gt=0)

    # --- circuit breaker around Kafka I/O
    breaker_failure_threshold: int = Field(default=3, ge=1)
    breaker_reset_timeout: float = Field(default=5.0, gt=0)
    breaker_half_open_max_calls: int = Field(default=1, ge=1)

    # --- demo handler
    demo_cpu_ms: float = Field(default=1.0, ge=0)
    demo_tick_interval: float = Field(default=1.0, gt=0)
    demo_fail_probability: float = Field(default=0.0, ge=0, le=1)
    demo_fail_streams: Annotated[tuple[str, ...], NoDecode] = ()
    demo_seed: int | None = None
    #: a started demo stream reports ``starting`` this long before ``running`` (keeps a
    #: migration in flight long enough for tests to act on it)
    demo_start_delay: float = Field(default=0.0, ge=0)

    # --- command handler
    command_template: str = ""
    command_stop_timeout: float = Field(default=5.0, gt=0)
    command_restart_base: float = Field(default=1.0, gt=0)
    command_restart_cap: float = Field(default=30.0, gt=0)
    #: a process that lived this long counts as started; its restart back-off resets
    command_stable_after: float = Field(default=10.0, gt=0)
    command_stderr_tail: int = Field(default=2048, ge=0, le=4000)

    @field_validator("tags", "demo_fail_streams", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        # Allow STREAMPLANE_TAGS=gpu,ssd as well as a JSON list.
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("heartbeat_lease")
    @classmethod
    def _lease_outlasts_a_heartbeat(cls, lease: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("heartbeat_interval")
        if lease is not None and interval is not None and lease <= 2 * interval:
            raise ValueError(
                f"must exceed two heartbeat intervals ({2 * interval}s): "
                "one lost heartbeat would stop every stream"
            )
        return lease
