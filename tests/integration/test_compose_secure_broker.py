"""The secure compose mode's broker configuration, run for real without Docker: what
``streamplane infra compose-secrets`` writes into its volumes (the broker's
``server.properties``, the ``format.args`` with the SCRAM users and the admin's client login
in ``broker/``, each principal's password in a directory of its own) is used exactly as
``docker-compose.secure.yml`` uses it, with the local Kafka jars instead of the image's:
``java @format.args``, then the broker on the properties; the image's health check login;
then ``streamplane infra grant`` (the ``kafka-acls`` one-shot) and the roles: the
orchestrator creates the topics and writes the log, a worker may not. Only the addresses
differ from compose's (free loopback ports instead of ``kafka:9092``)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.errors import TopicAuthorizationFailedError
from support.ports import free_ports
from typer.testing import CliRunner

from control_plane.cli.main import app
from control_plane.tools.infra import kafka
from control_plane.tools.infra.compose_secure import (
    BROKER,
    BrokerSpot,
    password_file,
    write_secrets,
)
from control_plane.tools.infra.config import kafka_version
from control_plane.tools.infra.secure import MECHANISM, PROTOCOL
from events.topics import Topics
from kafka_auth import KafkaAccess
from projections.errors import ProjectionError
from projections.io.kafka import make_admin, make_producer, started
from projections.io.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PREFIX = "composed"
UP_WITHIN = 60.0


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[tuple[BrokerSpot, Path]]:
    libs = kafka.ensure_libs(kafka_version())
    internal, host, controller = free_ports(3)
    spot = BrokerSpot(
        internal=f"127.0.0.1:{internal}",
        internal_advertised=f"127.0.0.1:{internal}",
        host=f"127.0.0.1:{host}",
        host_advertised=f"127.0.0.1:{host}",
        controller=f"127.0.0.1:{controller}",
        voter=f"127.0.0.1:{controller}",
        data_dir=str(tmp_path / "data"),
        libs=str(libs),
        # the broker's volume, as its container sees it (compose: /run/streamplane-kafka)
        secrets_dir=str(tmp_path / "kafka-secrets" / BROKER),
    )
    secrets = tmp_path / "kafka-secrets"  # the one-shot's tree: a sub-directory per volume
    names = write_secrets(secrets, spot, kafka_uid=None, app_uid=None)
    files = {
        f"{BROKER}/{n}" for n in ("server.properties", "format.args", "admin-client.properties")
    }
    assert files <= set(names)
    java = shutil.which("java")
    assert java, "java is needed for the Kafka jars"
    # what the kafka service's command does: format with the SCRAM users, then run
    formatted = subprocess.run(
        [java, f"@{secrets / BROKER / 'format.args'}"], capture_output=True, text=True, check=False
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    log = (tmp_path / "broker.log").open("w")
    proc = subprocess.Popen(
        [
            java,
            "-Xmx384m",
            "-cp",
            f"{libs}/*",
            "kafka.Kafka",
            str(secrets / BROKER / "server.properties"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield spot, secrets
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()


def _access(spot: BrokerSpot, secrets: Path, principal: str, *, host: bool = False) -> KafkaAccess:
    """The principal as its container connects: its own volume, ``<principal>/`` here."""
    address = spot.host_advertised if host else spot.internal_advertised
    path = password_file(secrets / principal, principal)
    return KafkaAccess(address, PROTOCOL, MECHANISM, principal, str(path))


def _admin_from_client_properties(spot: BrokerSpot, secrets: Path, tmp: Path) -> KafkaAccess:
    """The admin as ``admin-client.properties`` (the compose health check's login: the
    image's kafka-broker-api-versions reads it; that tool is not among the jars here)."""
    props = dict(
        line.split("=", 1)
        for line in (secrets / BROKER / "admin-client.properties").read_text().splitlines()
        if "=" in line
    )
    assert (props["security.protocol"], props["sasl.mechanism"]) == (PROTOCOL, MECHANISM)
    login = re.fullmatch(r'.*ScramLoginModule required username="(\w+)" password="([^"]+)";',
                         props["sasl.jaas.config"])  # fmt: skip
    assert login, props["sasl.jaas.config"]
    secret = tmp / "from-client-properties.password"
    secret.write_text(login.group(2))
    return KafkaAccess(spot.internal_advertised, PROTOCOL, MECHANISM, login.group(1), str(secret))


async def _healthy(admin: KafkaAccess) -> bool:
    try:
        async with started(make_admin(admin), kafka_timeout=5, what="health check"):
            return True
    except ProjectionError:
        return False


async def test_the_compose_broker_authenticates_and_authorizes_each_role(
    broker: tuple[BrokerSpot, Path], tmp_path: Path
) -> None:
    spot, secrets = broker
    admin = _admin_from_client_properties(spot, secrets, tmp_path)
    began = time.monotonic()
    while not await _healthy(admin):
        assert time.monotonic() - began < UP_WITHIN, "the broker never passed its health check"
        await asyncio.sleep(1)

    args = ["infra", "grant", "--bootstrap", spot.internal_advertised]
    # kafka-acls mounts the admin's volume only
    args += ["--credentials", str(secrets / "admin"), "--topic-prefix", PREFIX]
    granted = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert granted.exit_code == 0 and "ACL rule(s)" in granted.stdout, granted.output

    topics = Topics(PREFIX)
    await ensure_topics(_access(spot, secrets, "orchestrator"), topics, kafka_timeout=30)
    orchestrator = make_producer(_access(spot, secrets, "orchestrator", host=True), linger_ms=0)
    async with started(orchestrator, kafka_timeout=30, what="orchestrator"):
        await orchestrator.send_and_wait(topics.events, b"{}", key=b"k")
    worker = make_producer(_access(spot, secrets, "worker"), linger_ms=0)
    async with started(worker, kafka_timeout=30, what="worker"):
        await worker.send_and_wait(topics.heartbeats, b"{}", key=b"w1")
        with pytest.raises(TopicAuthorizationFailedError):
            await worker.send_and_wait(topics.events, b"{}", key=b"k")
    # a wrong password is refused (aiokafka reports a failed SASL handshake as a failure to
    # bootstrap; the same user with the right password just connected to the same broker)
    (secrets / "forged.password").write_text("not-the-password\n")
    forged = KafkaAccess(
        spot.internal_advertised, PROTOCOL, MECHANISM, "worker", str(secrets / "forged.password")
    )
    with pytest.raises(ProjectionError, match="bootstrap"):
        async with started(make_producer(forged), kafka_timeout=15, what="forged"):
            pass
