"""Secure mode of the local Kafka: SASL/SCRAM-SHA-512 for clients, the StandardAuthorizer
with nothing allowed by default, one principal per role (:mod:`.acls`).

Why SCRAM rather than mTLS: no certificate authority to create, rotate and hand to every
process; the users can be bootstrapped into the metadata log when the storage is formatted
(``StorageTool format --add-scram``), before any broker runs; aiokafka and Faust speak it.

Secrets: each principal's password is a random token in ``<cluster>/credentials/<name>.
password`` (0600, the directory 0700), created once. Nothing here prints one, and none is
ever on a command line: the format tool gets its arguments from a 0600 ``@argfile`` (the
java launcher reads it), the brokers' own login (admin, inter-broker and controller) sits
in their 0600 ``server.properties``. ``<name>.env`` beside each password file holds the
``STREAMPLANE_KAFKA_*`` settings that point a process at it (no secret inside).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from control_plane.tools.infra.acls import ADMIN, PRINCIPALS, Acl, all_acls
from control_plane.tools.infra.config import InfraError, KafkaCluster, KafkaNode
from kafka_auth import KafkaAccess
from kafka_auth.access import SaslMechanism, SecurityProtocol

__all__ = [
    "ADMIN",
    "PRINCIPALS",
    "access",
    "credentials_dir",
    "ensure_credentials",
    "grant",
    "password_file",
    "role_env",
]

MECHANISM: SaslMechanism = "SCRAM-SHA-512"
PROTOCOL: SecurityProtocol = "SASL_PLAINTEXT"
ALLOW = 3  # Kafka's permission type code


def credentials_dir(cluster: KafkaCluster) -> Path:
    """Where the principals' password and settings files are."""
    return cluster.home / "credentials"


def password_file(cluster: KafkaCluster, principal: str) -> Path:
    return credentials_dir(cluster) / f"{principal}.password"


def _private(path: Path, text: str) -> None:
    # Created 0600 from the start: no moment where another user could read it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    path.chmod(0o600)


def ensure_credentials(cluster: KafkaCluster) -> None:
    """Create a password for every principal that has none, and each one's ``.env``."""
    folder = credentials_dir(cluster)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    for principal in PRINCIPALS:
        secret = password_file(cluster, principal)
        if not secret.exists():
            _private(secret, secrets.token_urlsafe(24) + "\n")
        lines = [f"{key}={value}\n" for key, value in role_env(cluster, principal).items()]
        _private(folder / f"{principal}.env", "".join(lines))


def access(cluster: KafkaCluster, principal: str) -> KafkaAccess:
    """How ``principal`` reaches the secure cluster (for processes, tests and infra)."""
    return KafkaAccess(
        cluster.bootstrap, PROTOCOL, MECHANISM, principal, str(password_file(cluster, principal))
    )


def role_env(cluster: KafkaCluster, principal: str) -> dict[str, str]:
    """The ``STREAMPLANE_KAFKA_*`` settings that make a child process ``principal`` (what
    ``<principal>.env`` holds; no secret, only the password file's path)."""
    who = access(cluster, principal)
    return {
        "STREAMPLANE_KAFKA_BOOTSTRAP": who.bootstrap,
        "STREAMPLANE_KAFKA_SECURITY_PROTOCOL": who.security_protocol,
        "STREAMPLANE_KAFKA_SASL_MECHANISM": who.sasl_mechanism,
        "STREAMPLANE_KAFKA_SASL_USERNAME": who.sasl_username,
        "STREAMPLANE_KAFKA_SASL_PASSWORD_FILE": who.sasl_password_file,
    }


def _password(cluster: KafkaCluster, principal: str) -> str:
    return access(cluster, principal).password()


def broker_properties(cluster: KafkaCluster, node: KafkaNode) -> dict[str, object]:
    """The listener, SASL and authorizer settings of one secure node."""
    return sasl_properties(
        _password(cluster, ADMIN),
        listeners={"SASL_PLAINTEXT": f"127.0.0.1:{node.port}"},
        advertised={"SASL_PLAINTEXT": f"127.0.0.1:{node.port}"},
        controller=f"127.0.0.1:{node.controller_port}",
        inter_broker="SASL_PLAINTEXT",
    )


def sasl_properties(
    admin_password: str,
    *,
    listeners: dict[str, str],
    advertised: dict[str, str],
    controller: str,
    inter_broker: str,
) -> dict[str, object]:
    """SASL/SCRAM on every client listener (name -> ``host:port`` to bind; ``advertised``:
    name -> the address clients are told), PLAIN for the controller's, the authorizer with
    nothing allowed by default and the admin as the only super user."""
    scram = f'username="{ADMIN}" password="{admin_password}";'
    names = [*listeners, "CONTROLLER"]
    out: dict[str, object] = {
        "listeners": ",".join(f"{name}://{listeners[name]}" for name in listeners)
        + f",CONTROLLER://{controller}",
        "advertised.listeners": ",".join(f"{name}://{advertised[name]}" for name in advertised),
        "inter.broker.listener.name": inter_broker,
        "listener.security.protocol.map": ",".join(f"{name}:SASL_PLAINTEXT" for name in names),
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        # SCRAM users live in the metadata log, which the controllers serve: they cannot
        # authenticate their own listener with it. PLAIN with the admin alone.
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'username="{ADMIN}" password="{admin_password}" '
            f'user_{ADMIN}="{admin_password}";'
        ),
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{ADMIN}",
    }
    for name in listeners:
        out[f"listener.name.{name.lower()}.scram-sha-512.sasl.jaas.config"] = (
            f"org.apache.kafka.common.security.scram.ScramLoginModule required {scram}"
        )
    return out


def scram_arguments(passwords: dict[str, str]) -> list[str]:
    """``--add-scram`` arguments of ``StorageTool format`` for ``principal -> password``."""
    out = []
    for principal, password in passwords.items():
        out += ["--add-scram", f"{MECHANISM}=[name={principal},password={password}]"]
    return out


def format_arguments(cluster: KafkaCluster) -> list[str]:
    """``--add-scram`` arguments of ``StorageTool format``: every principal, bootstrapped
    into the metadata log (goes into an @argfile, never onto the command line)."""
    return scram_arguments({p: _password(cluster, p) for p in PRINCIPALS})


def write_argfile(path: Path, args: list[str]) -> None:
    """A java launcher @argfile (0600), one double-quoted argument a line."""
    for arg in args:
        if '"' in arg or "\\" in arg or "\n" in arg:
            raise InfraError(f"cannot put an argument with quotes or backslashes in {path}")
    _private(path, "".join(f'"{arg}"\n' for arg in args))


async def grant(cluster: KafkaCluster, prefix: str, *, kafka_timeout: float = 30.0) -> int:
    """Create every role's ACLs for topic ``prefix`` (idempotent: Kafka keeps one copy of
    an identical rule); returns how many rules were sent."""
    return await create_acls(access(cluster, ADMIN), all_acls(prefix), kafka_timeout=kafka_timeout)


async def create_acls(admin: KafkaAccess, acls: list[Acl], *, kafka_timeout: float = 30.0) -> int:
    """CreateAcls, one request per rule, as ``admin`` (aiokafka's admin client has no
    ACL call; its protocol layer has the request)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.admin import CreateAclsRequest

    client = AIOKafkaClient(**admin.client_kwargs())
    try:
        async with asyncio.timeout(kafka_timeout):
            await client.bootstrap()
            node = client.get_random_node()
            for acl in acls:
                request = CreateAclsRequest(
                    acl.resource, acl.name, acl.pattern, acl.principal, "*", acl.operation, ALLOW
                )
                response = await client.send(node, request)
                for error, message in response.creation_responses:
                    if error:
                        raise InfraError(f"create ACL {acl}: error {error}: {message}")
    finally:
        await client.close()
    return len(acls)
