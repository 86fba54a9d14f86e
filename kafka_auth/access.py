"""One description of how to reach Kafka, turned into the keyword arguments aiokafka (and
Faust) take.

Why a leaf of its own: the worker agent may import only the contract and the leaves, the
io layer and the tools sit above; a second copy of "settings to client arguments" in the
worker would drift from the first (one side gains TLS, the other does not). The password
lives in a file (``STREAMPLANE_KAFKA_SASL_PASSWORD_FILE``), read when a client is built, so
it never appears on a command line, in the environment of a ``ps`` listing or in a log.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaAccessError(ValueError):
    """The Kafka credentials are incomplete or unreadable; the message names the setting."""


class KafkaAccess(NamedTuple):
    """Where the brokers are and who this process is to them (a plain value, no secret)."""

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str = ""
    #: a file holding only the password (0600); its content is never kept in this value
    sasl_password_file: str = ""
    #: CA bundle for *_SSL protocols (empty: the system's trust store)
    ssl_cafile: str = ""

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def principal(self) -> str:
        """``User:<name>`` as the brokers' ACLs name this process, or ``ANONYMOUS``."""
        return f"User:{self.sasl_username}" if self.uses_sasl else "User:ANONYMOUS"

    def password(self) -> str:
        """The SASL password, read from its file now (never cached, never logged)."""
        if not self.sasl_password_file:
            raise KafkaAccessError(
                "kafka_sasl_password_file: required with "
                f"kafka_security_protocol={self.security_protocol}"
            )
        try:
            return Path(self.sasl_password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise KafkaAccessError(
                f"kafka_sasl_password_file: cannot read {self.sasl_password_file}: "
                f"{exc.strerror or exc}"
            ) from exc

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.security_protocol.endswith("SSL"):
            return None
        return ssl.create_default_context(cafile=self.ssl_cafile or None)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``AIOKafkaProducer``/``Consumer``/``AdminClient``/``Client``."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if context := self.ssl_context():
            kwargs["ssl_context"] = context
        if self.uses_sasl:
            kwargs |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.sasl_username,
                "sasl_plain_password": self.password(),
            }
        return kwargs


#: what the clients of the io layer accept: a bare ``host:port,...`` means PLAINTEXT
Brokers = str | KafkaAccess


def as_access(brokers: Brokers) -> KafkaAccess:
    """A :class:`KafkaAccess` for either form (a bare string is a plaintext connection)."""
    return brokers if isinstance(brokers, KafkaAccess) else KafkaAccess(brokers)


class KafkaClientSettings(BaseSettings):
    """The Kafka fields every process's settings share (env ``STREAMPLANE_KAFKA_*``).

    A process's own settings class derives from this one and keeps its own
    ``model_config`` (prefix ``STREAMPLANE_``, frozen); used alone (a tool, a benchmark's
    child) it reads the same variables."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = "127.0.0.1:19092"
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password_file: str = ""
    kafka_ssl_cafile: str = ""

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaClientSettings:
        # Said at start, naming the setting, rather than as an authentication failure later.
        if self.kafka_security_protocol.startswith("SASL_"):
            for name in ("kafka_sasl_username", "kafka_sasl_password_file"):
                if not getattr(self, name):
                    raise ValueError(
                        f"{name}: required with kafka_security_protocol="
                        f"{self.kafka_security_protocol}"
                    )
        return self

    @property
    def kafka_access(self) -> KafkaAccess:
        """How this process reaches Kafka (pass it wherever a client is made)."""
        return KafkaAccess(
            self.kafka_bootstrap,
            self.kafka_security_protocol,
            self.kafka_sasl_mechanism,
            self.kafka_sasl_username,
            self.kafka_sasl_password_file,
            self.kafka_ssl_cafile,
        )
