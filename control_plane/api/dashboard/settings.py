"""The dashboard's settings: a part of the API process's settings, and the settings of the
dashboard served alone (``python -m control_plane.api.dashboard``, what ``streamplane demo``
runs when it has no PostgreSQL for the API's reads).

:class:`DashboardSettings` is a plain frozen model, like
:class:`projections.io.postgres.DatabaseSettings`: the process that serves the dashboard
holds it as one field of its own settings object (one settings object per process).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict

from events.topics import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX
from kafka_auth import KafkaClientSettings


class DashboardSettings(BaseModel):
    """Bounds and timings of the live dashboard (every one has a default that suits a demo
    and a cluster of thousands of streams alike)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: messages queued for one browser; a client that falls this far behind is dropped (its
    #: page reconnects and starts again from a fresh snapshot) instead of buffered forever
    client_queue: int = Field(default=256, ge=1, le=100_000)
    #: browsers served at once; one more gets a 503 (each costs a queue and a snapshot)
    max_clients: int = Field(default=64, ge=1, le=10_000)
    #: seconds between keep-alive comments on an idle stream (proxies close silent streams)
    keepalive: float = Field(default=15.0, gt=0)
    #: how long the browser waits before it reconnects, milliseconds (the SSE ``retry``)
    reconnect_ms: int = Field(default=2000, ge=100, le=600_000)
    #: how long one read of the log waits for new records, milliseconds
    poll_ms: int = Field(default=250, ge=10, le=10_000)
    #: bound of one Kafka call of the log and alert readers, seconds
    kafka_timeout: float = Field(default=30.0, gt=0)
    #: first and longest pause before the readers try Kafka again after it failed, seconds
    retry_base: float = Field(default=0.5, gt=0)
    retry_cap: float = Field(default=15.0, gt=0)
    #: seconds between looks for the alerts topic while it does not exist yet
    alerts_lookup: float = Field(default=10.0, gt=0)
    #: the recent control events kept for a new page's live feed
    feed_size: int = Field(default=200, ge=1, le=10_000)
    #: width of one bucket of the timeline chart, seconds of log time
    timeline_bucket: float = Field(default=5.0, gt=0)
    #: buckets kept for the timeline chart (the oldest go first)
    timeline_points: int = Field(default=720, ge=2, le=100_000)
    #: the SystemHealth summary costs a pass over every stream: at most once per this many
    #: seconds while events arrive (a new page always gets a fresh one)
    health_interval: float = Field(default=1.0, ge=0)


class DashboardServerSettings(KafkaClientSettings):
    """The dashboard served alone, without the API's reads (env prefix ``STREAMPLANE_``;
    the dashboard's own part as JSON in ``STREAMPLANE_DASHBOARD``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
    api_host: str = "127.0.0.1"
    #: 0: any free port (the address is printed once listening)
    api_port: int = Field(default=8080, ge=0, le=65535)
    #: how long open streams get to end on shutdown before they are cut, seconds
    api_shutdown_grace: float = Field(default=5.0, gt=0)
    #: the API's token file: the dashboard's data needs a ``read`` token (docs/api.md)
    api_tokens_file: Path | None = None
    #: the dashboard without a token (the demo turns it on)
    api_anonymous_reads: bool = False
    dashboard: DashboardSettings = DashboardSettings()
