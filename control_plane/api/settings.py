"""The API process's settings (env prefix ``STREAMPLANE_``) and the bounds of its inputs.

The bounds are constants, not settings, because they are part of the OpenAPI document: a
client reads ``limit <= 10000`` there, and a deployment cannot silently move it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from control_plane.api.dashboard.settings import DashboardSettings
from events.topics import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX
from kafka_auth import KafkaClientSettings
from projections.io.postgres import DatabaseSettings
from projections.io.read_store import ReadModelSettings

#: the largest page ``GET /streams`` (and every other paged list) returns
MAX_LIMIT = 10_000
#: the largest ``offset`` a paged list accepts (PostgreSQL's OFFSET is a bigint; a bound far
#: below it keeps a fuzzed or mistyped number a 400 instead of a database error)
MAX_OFFSET = 1_000_000_000
#: the largest ``seq`` a time-travel request accepts
MAX_SEQ = 2**53


class ApiSettings(KafkaClientSettings):
    """The API process (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
    database_url: str = "postgresql://postgres@127.0.0.1:15432/streamplane"
    database_schema: str = "public"
    read_model_name: str = "read_model"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    #: bound of any one request, seconds (a request over it is a 504)
    api_request_timeout: float = Field(default=60.0, gt=0)
    #: how long a command waits for the orchestrator's answer (below the request bound)
    api_command_wait: float = Field(default=30.0, gt=0)
    #: bound of a time-travel replay, seconds
    api_replay_timeout: float = Field(default=50.0, gt=0)
    #: bound of one Kafka call of a read or a ``?wait=false`` send (the log's end for the
    #: lag, the alerts topic, the commands topic)
    api_kafka_timeout: float = Field(default=10.0, gt=0)
    #: the page size of a paged list when the request gives no ``limit``
    api_default_limit: int = Field(default=1000, ge=1, le=MAX_LIMIT)
    #: how long uvicorn lets open requests finish on shutdown, seconds
    api_shutdown_grace: float = Field(default=10.0, gt=0)
    #: the file of token hashes (``streamplane api tokens create``); unset: the API is open
    #: on a loopback address and refuses any other (docs/api.md, "Authentication")
    api_tokens_file: Path | None = None
    #: reads (and the dashboard) without a token; writes still need one
    api_anonymous_reads: bool = False
    database: DatabaseSettings = DatabaseSettings()
    #: the live dashboard's bounds (JSON in ``STREAMPLANE_DASHBOARD``; docs/dashboard.md)
    dashboard: DashboardSettings = DashboardSettings()

    def read_model_settings(self) -> ReadModelSettings:
        """The settings of a read-model projector on the same database and topics."""
        return ReadModelSettings(
            kafka_bootstrap=self.kafka_bootstrap,
            kafka_security_protocol=self.kafka_security_protocol,
            kafka_sasl_mechanism=self.kafka_sasl_mechanism,
            kafka_sasl_username=self.kafka_sasl_username,
            kafka_sasl_password_file=self.kafka_sasl_password_file,
            kafka_ssl_cafile=self.kafka_ssl_cafile,
            topic_prefix=self.topic_prefix,
            database_url=self.database_url,
            database_schema=self.database_schema,
            read_model_name=self.read_model_name,
            database=self.database,
        )
