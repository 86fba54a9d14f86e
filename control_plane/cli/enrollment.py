"""``streamplane instances keygen | enroll | revoke``: who may heartbeat as which server id.

``keygen`` writes a worker's key pair (the private file 0600, never printed; the public key
beside it, ``FILE.pub``); ``enroll ID --public-key FILE.pub`` sends ``EnrollInstance`` (the
orchestrator records ``InstanceEnrolled``); ``revoke ID`` sends ``RevokeInstance`` (its key
stops counting and its live incarnation is failed). docs/worker.md, "Keys and enrollment".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from control_plane.tools.options import Bootstrap, Prefix, ServerId, Wait
from events.enrollment import EnrollInstance, RevokeInstance, parse_public_key, public_key_text
from worker_agent import keys

#: ``_send(bootstrap, prefix, command class, wait, **fields)`` of the CLI's main module
Send = Callable[..., None]


def read_public_key(path: Path) -> str:
    """The base64 text of the Ed25519 public key in ``path``: the ``.pub`` file ``keygen``
    writes (base64 of the 32 raw bytes) or a PEM ``PUBLIC KEY``; a usage error otherwise."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint="--public-key") from None
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError(f"a {type(key).__name__}, not an Ed25519 key")
            return public_key_text(key)
        return public_key_text(parse_public_key(text))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{path} holds no Ed25519 public key ({exc})", param_hint="--public-key"
        ) from None


def add_enrollment_commands(instances_app: typer.Typer, send: Send) -> None:
    """Add ``keygen``, ``enroll`` and ``revoke`` to the ``instances`` group."""

    @instances_app.command("keygen")
    def instances_keygen(
        out: Annotated[
            Path, typer.Option(help="Private key file to create (0600; FILE.pub beside it).")
        ],
    ) -> None:
        """Make a worker's Ed25519 key pair; prints the public key file (the private key is
        never printed). Give the private file to the worker (STREAMPLANE_WORKER_KEY_FILE)
        and enroll the public one."""
        typer.echo(str(keys.generate(out)))

    @instances_app.command("enroll")
    def instances_enroll(
        server_id: ServerId,
        public_key: Annotated[
            Path,
            typer.Option(
                exists=True,
                dir_okay=False,
                help="The worker's public key file (keygen's FILE.pub).",
            ),
        ],
        bootstrap: Bootstrap = None,
        topic_prefix: Prefix = None,
        wait: Wait = 30.0,
    ) -> None:
        """Let SERVER_ID heartbeat when signed by this key (a new key replaces the old)."""
        fields: dict[str, Any] = {"server_id": server_id, "public_key": read_public_key(public_key)}
        send(bootstrap, topic_prefix, EnrollInstance, wait, **fields)

    @instances_app.command("revoke")
    def instances_revoke(
        server_id: ServerId,
        bootstrap: Bootstrap = None,
        topic_prefix: Prefix = None,
        wait: Wait = 30.0,
    ) -> None:
        """Revoke SERVER_ID's key: its heartbeats stop counting and it is failed (its streams
        move at once)."""
        send(bootstrap, topic_prefix, RevokeInstance, wait, server_id=server_id)
