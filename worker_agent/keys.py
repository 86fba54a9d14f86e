"""A worker's identity key: made once by the operator, read at start, used to sign a session
certificate per incarnation (whose MAC key then authenticates every heartbeat).

The private key lives in a file only its owner may read (``0600``, PKCS#8 PEM, unencrypted:
the worker must start unattended); the public key goes into ``InstanceEnrolled`` (its
base64 text, in ``<file>.pub``) through ``streamplane instances enroll``. A key file that
others can read is refused, as ssh refuses one: whoever can read it can be this worker.
What is signed, and how, is the contract's (:mod:`events.session`); the MAC key of each
session is drawn here (``secrets``) and never leaves the process but in its certificate.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from events import session
from events.enrollment import key_id, public_key_text
from worker_agent.errors import ConfigError

PRIVATE_MODE = 0o600


class Session(NamedTuple):
    """One incarnation's session: its certificate and MAC key (a secret: never logged)."""

    server_id: str
    incarnation: str
    certificate: bytes
    mac_key: bytes

    def headers(self, value: bytes) -> list[tuple[str, bytes]]:
        """The envelope's headers for the record value ``value`` (one HMAC)."""
        return session.headers(self.certificate, self.mac_key, value)

    def __repr__(self) -> str:  # the MAC key stays out of tracebacks and logs
        return f"Session({self.server_id!r}, {self.incarnation!r})"


class WorkerKey(NamedTuple):
    """A loaded private key and the id of its public half (what certificates name)."""

    private: Ed25519PrivateKey
    key_id: str

    def session(self, server_id: str, incarnation: str) -> Session:
        """A new session for ``incarnation``: a fresh random MAC key, certified by this key."""
        mac_key = secrets.token_bytes(session.MAC_KEY_BYTES)
        cert = session.certificate(
            self.private,
            key_id=self.key_id,
            server_id=server_id,
            incarnation=incarnation,
            mac_key=mac_key,
        )
        return Session(server_id, incarnation, cert, mac_key)


def public_path(private_path: Path) -> Path:
    return private_path.with_name(private_path.name + ".pub")


def generate(out: Path) -> Path:
    """Write a new private key to ``out`` (0600, never over an existing file) and its public
    key's base64 text to ``out.pub``; returns the public file's path."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    except FileExistsError as exc:
        raise ConfigError(f"key file {out} already exists: not overwritten") from exc
    except OSError as exc:
        raise ConfigError(f"key file {out}: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_path(out)
    public.write_text(public_key_text(key.public_key()) + "\n", encoding="ascii")
    return public


def load(path: Path) -> WorkerKey:
    """The private key of ``path``; :class:`ConfigError` naming the setting when the file
    is missing, readable by others, or not an Ed25519 private key (never its content)."""
    where = f"worker_key_file: {path}"
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{where}: readable by others (mode {mode & 0o777:o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where}: not an Ed25519 key ({type(key).__name__})")
    return WorkerKey(key, key_id(public_key_text(key.public_key())))
