"""The secure mode of ``docker-compose.yml`` (``docker-compose.secure.yml`` beside it): the
same SASL/SCRAM broker, authorizer and principals as ``streamplane infra up --secure``
(:mod:`.secure`, :mod:`.acls`), written for a broker in a container.

``streamplane infra compose-secrets`` runs once, as root, in the one-shot ``kafka-secrets``
service, which mounts one volume per reader under ``--dir``; each other container mounts
only its own volume, so it can read no other role's password:

- ``broker/`` (the ``kafka-secrets`` volume, the broker's only): ``server.properties`` and
  ``format.args``, the ``StorageTool format`` arguments with the SCRAM users (java
  ``@argfile``), both 0600 and owned by the Kafka image's user: the broker's container
  formats its storage with them, then starts on them; ``admin-client.properties`` (same
  owner), the admin's login for the image's own tools (the container's health check);
- ``<principal>/<principal>.password`` for every principal (0600, owned by the streamplane
  image's user, created once and kept): ``admin/`` is the ``kafka-acls`` one-shot's volume,
  ``worker/`` the workers' (they share one principal), and so on (:data:`VOLUMES`).

No password is ever printed, put on a command line or in an environment variable. Every
directory is 0711 (enter, not list). ``streamplane infra grant`` (the ``kafka-acls``
one-shot) then creates the roles' ACLs as the admin.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from control_plane.tools.infra.acls import PRINCIPALS
from control_plane.tools.infra.config import InfraError
from control_plane.tools.infra.kafka import base_properties, new_cluster_id, render_properties
from control_plane.tools.infra.secure import (
    ADMIN,
    MECHANISM,
    PROTOCOL,
    sasl_properties,
    scram_arguments,
    write_argfile,
)
from kafka_auth import KafkaAccess

#: uid of the user the official apache/kafka image runs as
KAFKA_IMAGE_UID = 1000
#: uid of the streamplane image's user (Dockerfile)
APP_IMAGE_UID = 10001
#: where every container mounts its secrets volume (and the one-shot the whole tree)
SECRETS_DIR = "/run/streamplane-kafka"
#: the broker's sub-directory of ``--dir`` (the ``kafka-secrets`` volume)
BROKER = "broker"
#: the compose volume of each sub-directory of ``--dir``: one per principal, one for the broker
VOLUMES: dict[str, str] = {
    BROKER: "kafka-secrets",
    **{p: f"kafka-secret-{p}" for p in PRINCIPALS},
}


@dataclass(frozen=True)
class BrokerSpot:
    """Where the one compose broker listens and keeps its data (defaults: compose's)."""

    #: bind address and advertised address of the in-network listener
    internal: str = "0.0.0.0:9092"
    internal_advertised: str = "kafka:9092"
    #: bind address and advertised address of the listener published on the host
    host: str = "0.0.0.0:19092"
    host_advertised: str = "127.0.0.1:19092"
    #: the controller's bind address and how the quorum reaches it
    controller: str = "0.0.0.0:9093"
    voter: str = "kafka:9093"
    data_dir: str = "/var/lib/kafka/data"
    #: where the broker's container sees its secrets (``broker/`` of the one-shot's tree)
    secrets_dir: str = SECRETS_DIR
    #: the Kafka jars inside the broker's image
    libs: str = "/opt/kafka/libs"


def _private(path: Path, text: str, uid: int | None) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)
    if uid is not None:
        os.chown(path, uid, uid)


def password_file(folder: Path, principal: str) -> Path:
    """The principal's password file in ``folder``, its volume as a container mounts it."""
    return folder / f"{principal}.password"


def _private_dir(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o711)
    return folder


def write_secrets(
    folder: Path,
    spot: BrokerSpot = BrokerSpot(),
    *,
    kafka_uid: int | None = KAFKA_IMAGE_UID,
    app_uid: int | None = APP_IMAGE_UID,
) -> list[str]:
    """Fill ``folder`` (module docstring); idempotent, passwords kept. Returns the names of
    the files written, relative to ``folder`` (for the one-shot's log: names only).
    ``*_uid`` None: leave the owner (a run that is not root)."""
    _private_dir(folder)
    passwords: dict[str, str] = {}
    for principal in PRINCIPALS:
        path = password_file(_private_dir(folder / principal), principal)
        if not path.exists():
            _private(path, secrets.token_urlsafe(24) + "\n", app_uid)
        passwords[principal] = path.read_text(encoding="utf-8").strip()
    settings = base_properties(replicas=1)
    settings.update({"node.id": 1, "controller.quorum.voters": f"1@{spot.voter}"})
    settings["log.dirs"] = spot.data_dir
    settings.update(
        sasl_properties(
            passwords[ADMIN],
            listeners={"INTERNAL": spot.internal, "HOST": spot.host},
            advertised={"INTERNAL": spot.internal_advertised, "HOST": spot.host_advertised},
            controller=spot.controller,
            inter_broker="INTERNAL",
        )
    )
    broker = _private_dir(folder / BROKER)
    properties = broker / "server.properties"
    _private(properties, render_properties(settings), kafka_uid)
    cid_file = broker / "cluster.id"
    if not cid_file.exists():
        _private(cid_file, new_cluster_id() + "\n", kafka_uid)
    cid = cid_file.read_text(encoding="utf-8").strip()
    args = ["-cp", f"{spot.libs}/*", "kafka.tools.StorageTool", "format", "-t", cid]
    args += ["-c", f"{spot.secrets_dir}/{properties.name}", "--ignore-formatted"]
    args += scram_arguments(passwords)
    argfile = broker / "format.args"
    write_argfile(argfile, args)
    if kafka_uid is not None:
        os.chown(argfile, kafka_uid, kafka_uid)
    login = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{ADMIN}" password="{passwords[ADMIN]}";'
    )
    client = {
        "security.protocol": PROTOCOL,
        "sasl.mechanism": MECHANISM,
        "sasl.jaas.config": login,
    }
    _private(broker / "admin-client.properties", render_properties(client), kafka_uid)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def admin_access(bootstrap: str, folder: Path) -> KafkaAccess:
    """How ``infra grant`` reaches a broker as the admin, with the password in ``folder``."""
    path = password_file(folder, ADMIN)
    if not path.exists():
        raise InfraError(f"credentials: no {path.name} in {folder} (run `infra compose-secrets`)")
    return KafkaAccess(bootstrap, PROTOCOL, MECHANISM, ADMIN, str(path))


__all__ = [
    "APP_IMAGE_UID",
    "BROKER",
    "KAFKA_IMAGE_UID",
    "SECRETS_DIR",
    "VOLUMES",
    "BrokerSpot",
    "admin_access",
    "password_file",
    "write_secrets",
]
