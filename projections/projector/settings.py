"""The Faust projector's settings (env prefix ``STREAMPLANE_``), read once in ``main``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import faust
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from events.topics import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX, changelog_topic, projector_app_id
from kafka_auth import KafkaAccess, KafkaClientSettings
from telemetry.metrics import MetricsAddress

#: table store -> Faust's store URL (RocksDB: Faust's store on ``rocksdict``, pinned in
#: pyproject, writable outside a stream: :mod:`projections.projector.stores`)
STORES = {"memory": "memory://", "rocksdb": "streamplane-rocksdb://"}


class ProjectorSettings(KafkaClientSettings):
    """The Faust projector process (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
    #: Faust app id = consumer group and changelog prefix; default ``<prefix>-projector``
    projector_id: str | None = None
    #: replication of Faust's changelog topics; default min(brokers, 3), as every topic
    projector_replication_factor: int | None = Field(default=None, ge=1)
    #: seconds for any single Kafka call of a replay (start-up, takeover)
    projector_kafka_timeout: float = Field(default=30.0, gt=0)
    #: where the tables live: ``memory`` (rebuilt from the changelogs on every start) or
    #: ``rocksdb`` (on disk under the data dir; only the changelogs' tails are read)
    projector_store: Literal["memory", "rocksdb"] = "memory"
    #: Faust's data directory (RocksDB tables; one per process); default under the temp dir
    projector_data_dir: str | None = None
    #: control-log records the holder's reader takes at once (effects are written per event)
    projector_batch_max: int = Field(default=1000, ge=1)
    #: seconds the holder's reader waits for a record when there is none
    projector_batch_within: float = Field(default=0.05, gt=0)
    #: seconds the projector's producer waits to fill a request (Faust's ``producer_linger``)
    projector_producer_linger: float = Field(default=0.005, ge=0)
    #: Faust's offset commit interval, seconds
    projector_commit_interval: float = Field(default=1.0, gt=0)
    #: seconds without a heartbeat before the group gives a dead projector's partitions away
    projector_session_timeout: float = Field(default=30.0, gt=0)
    #: seconds between two catch-ups of a standby's fold with the log, so that a takeover has
    #: only the tail to fold (0: a standby folds only when it takes over)
    projector_standby_catch_up: float = Field(default=30.0, ge=0)
    #: serve Prometheus metrics on ``host:port`` (empty: no endpoint); docs/metrics.md
    metrics_address: MetricsAddress = ""
    #: seconds between two measurements of the consumer and projection lags
    projector_metrics_interval: float = Field(default=5.0, gt=0)

    @property
    def app_id(self) -> str:
        return projector_app_id(self.topic_prefix, self.projector_id)

    def changelog_topic(self, table: str) -> str:
        """The Kafka topic Faust keeps ``table`` in (``<app id>-<table>-changelog``)."""
        return changelog_topic(self.app_id, table)

    @property
    def store_url(self) -> str:
        return STORES[self.projector_store]

    @property
    def data_dir(self) -> Path:
        """This app's Faust data directory (``<data dir>/<app id>``)."""
        root = Path(self.projector_data_dir or Path(tempfile.gettempdir()) / "streamplane-faust")
        return root / self.app_id


def faust_credentials(access: KafkaAccess) -> faust.SASLCredentials | None:
    """Faust's form of the process's Kafka credentials (None: plaintext)."""
    if not access.uses_sasl:
        return None
    return faust.SASLCredentials(
        username=access.sasl_username,
        password=access.password(),
        ssl_context=access.ssl_context(),
        mechanism=access.sasl_mechanism,
    )


__all__ = ["STORES", "ProjectorSettings", "faust_credentials"]
