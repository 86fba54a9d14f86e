"""Who may heartbeat as whom: the enrollment events and commands, and the signed heartbeat.

Kafka ACLs cannot say which record key a producer may write, so a worker's identity travels
with its heartbeat. An operator enrolls an instance (``EnrollInstance`` -> the orchestrator
writes ``InstanceEnrolled`` with the instance's Ed25519 public key); the worker signs the
exact bytes of every heartbeat record value with its private key; the orchestrator counts a
heartbeat only when the signature verifies against the key the log holds for that
``server_id`` (``RevokeInstance`` -> ``InstanceRevoked`` takes it back, and the instance is
failed).

**The signed envelope** is two Kafka record headers beside the unchanged heartbeat value
(CloudEvents JSON, as every reader of the topic already decodes it):

- ``streamplane-key-id``: the key's id (:func:`key_id`: 16 hex digits of its SHA-256), ASCII;
- ``streamplane-signature``: the 64-byte Ed25519 signature of the record value, raw.

Headers, not a wrapper around the value, so that the heartbeat decode path
(:func:`events.codec.decode_heartbeat`, its fast path) and every other reader of the topic
stay as they are, and an unsigned heartbeat is the same bytes as a signed one.
:func:`read_signature` is the one decoder of the envelope (fuzzed: it never raises anything
but :class:`SignatureError`). Ed25519 signing and verifying are deterministic computations,
so they live here in the contract; making a key (randomness) and reading key files (I/O)
belong to the shells (``worker_agent.keys``, the CLI).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Iterable
from typing import Annotated, ClassVar, Literal, NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import StringConstraints

from events.base import Command, ControlEvent
from events.ids import Reason, ServerId, ShortText

#: header names of the signed envelope (see the module docstring)
KEY_ID_HEADER = "streamplane-key-id"
SIGNATURE_HEADER = "streamplane-signature"
SIGNATURE_BYTES = 64
PUBLIC_KEY_BYTES = 32
KEY_ID_LENGTH = 16


class SignatureError(ValueError):
    """A record's signature headers are missing or malformed (names the header)."""

    retriable = False

    def __init__(self, message: str, *, header: str, reason: str):
        super().__init__(message)
        self.header = header
        #: the machine-readable word the dead-letter entry and the metric carry
        self.reason = reason


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


# --- the signed envelope ------------------------------------------------------------------


class Signature(NamedTuple):
    """What a record's headers say: which key signed it, and the signature."""

    key_id: str
    signature: bytes


def sign(key: Ed25519PrivateKey, value: bytes, *, key_id: str) -> list[tuple[str, bytes]]:
    """The headers that sign ``value`` (the exact record value bytes) with ``key``."""
    return [(KEY_ID_HEADER, key_id.encode("ascii")), (SIGNATURE_HEADER, key.sign(value))]


def read_signature(headers: Iterable[tuple[str, bytes | None]] | None) -> Signature:
    """The signature a record's headers carry; :class:`SignatureError` when they carry none
    or a malformed one (a missing header, a duplicate, the wrong length or alphabet)."""
    found: dict[str, bytes] = {}
    for name, value in headers or ():
        if name in (KEY_ID_HEADER, SIGNATURE_HEADER):
            if name in found:
                raise SignatureError(
                    f"header {name} appears twice", header=name, reason="malformed"
                )
            found[name] = value if isinstance(value, bytes) else b""
    kid, sig = found.get(KEY_ID_HEADER), found.get(SIGNATURE_HEADER)
    if kid is None or sig is None:
        missing = KEY_ID_HEADER if kid is None else SIGNATURE_HEADER
        raise SignatureError(f"header {missing} is missing", header=missing, reason="unsigned")
    if len(kid) != KEY_ID_LENGTH or kid.strip(b"0123456789abcdef"):
        raise SignatureError(
            f"header {KEY_ID_HEADER} must be {KEY_ID_LENGTH} lowercase hex digits",
            header=KEY_ID_HEADER,
            reason="malformed",
        )
    if len(sig) != SIGNATURE_BYTES:
        raise SignatureError(
            f"header {SIGNATURE_HEADER} must be {SIGNATURE_BYTES} bytes, got {len(sig)}",
            header=SIGNATURE_HEADER,
            reason="malformed",
        )
    return Signature(kid.decode("ascii"), sig)


def verify(key: Ed25519PublicKey, value: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``key``'s signature of exactly ``value``."""
    try:
        key.verify(signature, value)
    except InvalidSignature:
        return False
    return True


__all__ = [
    "KEY_ID_HEADER",
    "SIGNATURE_HEADER",
    "EnrollInstance",
    "InstanceEnrolled",
    "InstanceRevoked",
    "RevokeInstance",
    "Signature",
    "SignatureError",
    "key_id",
    "parse_public_key",
    "public_key_text",
    "read_signature",
    "sign",
    "verify",
]
