"""Who may heartbeat as whom: the enrollment events and commands, and the key helpers.

Kafka ACLs cannot say which record key a producer may write, so a worker's identity travels
with its heartbeat. An operator enrolls an instance (``EnrollInstance`` -> the orchestrator
writes ``InstanceEnrolled`` with the instance's Ed25519 public key); the worker signs a
session certificate per incarnation with its private key and MACs every heartbeat under the
certificate's key (the envelope: :mod:`events.session`); the orchestrator counts a heartbeat
only when the certificate verifies against the key the control log holds for that
``server_id`` and the MAC is right (``RevokeInstance`` -> ``InstanceRevoked`` takes it back,
and the instance is failed). Making a key (randomness) and reading key files (I/O) belong to
the shells (``worker_agent.keys``, the CLI).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Annotated, ClassVar, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import StringConstraints

from events.base import Command, ControlEvent
from events.ids import Reason, ServerId, ShortText

PUBLIC_KEY_BYTES = 32
KEY_ID_LENGTH = 16


def _raw_public_key(text: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ValueError("public_key must be standard base64") from exc
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"public_key must be {PUBLIC_KEY_BYTES} bytes (Ed25519), got {len(raw)}")
    return raw


#: an Ed25519 public key: its 32 raw bytes in standard base64 (44 characters; the pattern
#: admits exactly the canonical encodings of 32 bytes, so no validator beyond it is needed)
PUBLIC_KEY_PATTERN = r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$"
PublicKeyText = Annotated[str, StringConstraints(pattern=PUBLIC_KEY_PATTERN)]
KEY_ID_PATTERN = r"^[0-9a-f]{16}$"
KeyId = Annotated[str, StringConstraints(pattern=KEY_ID_PATTERN)]


def key_id(public_key: str) -> str:
    """The id of a public key (base64 text): the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(_raw_public_key(public_key)).hexdigest()[:KEY_ID_LENGTH]


def public_key_text(key: Ed25519PublicKey) -> str:
    """A public key as the base64 text :class:`InstanceEnrolled` carries."""
    return base64.b64encode(key.public_bytes_raw()).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """The key of a base64 text (raises ``ValueError`` naming what is wrong)."""
    return Ed25519PublicKey.from_public_bytes(_raw_public_key(text.strip()))


# --- events and commands ------------------------------------------------------------------


class InstanceEnrolled(ControlEvent):
    """``server_id`` may heartbeat when signed by this key (a new key replaces the old)."""

    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["InstanceEnrolled"] = "InstanceEnrolled"
    server_id: ServerId
    public_key: PublicKeyText
    key_id: KeyId
    #: who asked for it: the enrolling command's ``source``
    enrolled_by: ShortText = ""


class InstanceRevoked(ControlEvent):
    """``server_id``'s key no longer counts; its live incarnation is failed after this."""

    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["InstanceRevoked"] = "InstanceRevoked"
    server_id: ServerId
    key_id: KeyId
    revoked_by: ShortText = ""
    reason: Reason = "operator"


class EnrollInstance(Command):
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["EnrollInstance"] = "EnrollInstance"
    server_id: ServerId
    public_key: PublicKeyText


class RevokeInstance(Command):
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["RevokeInstance"] = "RevokeInstance"
    server_id: ServerId


__all__ = [
    "EnrollInstance",
    "InstanceEnrolled",
    "InstanceRevoked",
    "RevokeInstance",
    "key_id",
    "parse_public_key",
    "public_key_text",
]
