"""The heartbeat envelope (version 2): a session certificate and an HMAC per record.

Kafka ACLs cannot say which record key a producer may write, so a worker's identity travels
with its heartbeat. Signing every heartbeat with Ed25519 (envelope 1) cost the orchestrator
~90 us of CPU per heartbeat, too much for 10,000 workers at 1 Hz in one process; envelope 2
signs once per incarnation instead:

- at the start of each incarnation the worker draws a random 32-byte MAC key ``K`` and signs,
  with its enrolled Ed25519 key, a **session certificate** binding ``K`` to its ``server_id``
  and that incarnation (:func:`certificate`);
- every heartbeat record carries that certificate and an HMAC-SHA256 under ``K`` of the
  certificate followed by the record value (:func:`headers`);
- the orchestrator verifies a certificate's signature the first time it sees it (then keeps
  it), and every record's MAC (~1 us, :func:`mac_ok`).

**Headers** (the record value is the unchanged heartbeat, CloudEvents JSON):

- ``streamplane-session``: the certificate, raw bytes (:func:`parse_certificate`):
  ``0x02 | key_id (16 ASCII lowercase hex) | len(server_id) (1 byte) | server_id (ASCII) |
  len(incarnation) (1 byte) | incarnation (ASCII) | K (32) | Ed25519 signature (64)``, the
  signature over :data:`CERT_CONTEXT` followed by every byte before it;
- ``streamplane-mac``: ``HMAC-SHA256(K, certificate || value)``, 32 bytes raw.

``K`` is in clear in the headers: whoever may **read** the heartbeats topic can forge
heartbeats of an incarnation it has seen (docs/orchestrator.md, *Enrolled workers*, the
trade-off); a writer that cannot read it (a worker) cannot. Envelope 1's headers
(``streamplane-key-id``, ``streamplane-signature``) are no longer accepted.

:func:`read_envelope` and :func:`parse_certificate` are the decoders (fuzzed: they never raise
anything but :class:`SignatureError`). Signing, verifying and MACs are deterministic, so they
live here in the contract; drawing ``K`` (randomness) is the worker's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from typing import NamedTuple

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SESSION_HEADER = "streamplane-session"
MAC_HEADER = "streamplane-mac"
#: envelope 1's headers: named in the refusal of a record that carries only them
LEGACY_HEADERS = ("streamplane-key-id", "streamplane-signature")
CERT_VERSION = 2
#: what a certificate's signature covers first (domain separation: nothing else the key
#: might sign can pass for a certificate)
CERT_CONTEXT = b"streamplane session certificate v2\x00"
MAC_KEY_BYTES = 32
MAC_BYTES = 32
SIGNATURE_BYTES = 64
KEY_ID_LENGTH = 16
MAX_ID_LENGTH = 128
_ID_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-")
_HEX = b"0123456789abcdef"


class SignatureError(ValueError):
    """A record's envelope is missing or malformed (names the header). Never quotes the
    header's bytes: a certificate holds the MAC key."""

    retriable = False

    def __init__(self, message: str, *, header: str, reason: str):
        super().__init__(message)
        self.header = header
        #: the machine-readable word the dead-letter entry and the metric carry
        self.reason = reason


class Certificate(NamedTuple):
    """A parsed session certificate (its signature not yet checked)."""

    key_id: str
    server_id: str
    incarnation: str
    mac_key: bytes
    #: the bytes the signature covers (without :data:`CERT_CONTEXT`)
    signed: bytes
    signature: bytes


class Envelope(NamedTuple):
    """A record's envelope headers, raw: the certificate's bytes and the MAC."""

    certificate: bytes
    mac: bytes


def _id_bytes(text: str, what: str) -> bytes:
    raw = text.encode("ascii")
    if not 0 < len(raw) <= MAX_ID_LENGTH or not _ID_BYTES.issuperset(raw):
        raise ValueError(f"{what} is not a valid id")
    return raw


def certificate(
    key: Ed25519PrivateKey, *, key_id: str, server_id: str, incarnation: str, mac_key: bytes
) -> bytes:
    """The session certificate binding ``mac_key`` to ``server_id``'s ``incarnation``, signed
    by ``key`` (whose id is ``key_id``)."""
    if len(mac_key) != MAC_KEY_BYTES:
        raise ValueError(f"the MAC key must be {MAC_KEY_BYTES} bytes")
    kid = key_id.encode("ascii")
    if len(kid) != KEY_ID_LENGTH or kid.strip(_HEX):
        raise ValueError("key_id must be 16 lowercase hex digits")
    sid, inc = _id_bytes(server_id, "server_id"), _id_bytes(incarnation, "incarnation")
    signed = bytes([CERT_VERSION]) + kid + bytes([len(sid)]) + sid + bytes([len(inc)]) + inc
    signed += mac_key
    return signed + key.sign(CERT_CONTEXT + signed)


def mac(mac_key: bytes, cert: bytes, value: bytes) -> bytes:
    """The MAC of a record: HMAC-SHA256 under ``mac_key`` of ``cert`` then ``value``."""
    return hmac.digest(mac_key, cert + value, hashlib.sha256)


def headers(cert: bytes, mac_key: bytes, value: bytes) -> list[tuple[str, bytes]]:
    """The envelope's headers for the record value ``value``."""
    return [(SESSION_HEADER, cert), (MAC_HEADER, mac(mac_key, cert, value))]


def mac_ok(mac_key: bytes, cert: bytes, value: bytes, tag: bytes) -> bool:
    """Whether ``tag`` is the MAC of ``cert`` and ``value`` (compared in constant time)."""
    return hmac.compare_digest(mac(mac_key, cert, value), tag)


def read_envelope(headers: Iterable[tuple[str, bytes | None]] | None) -> Envelope:
    """The envelope a record's headers carry; :class:`SignatureError` when they carry none
    (``unsigned``) or a malformed one (a duplicate header, a MAC of the wrong length)."""
    cert: bytes | None = None
    tag: bytes | None = None
    legacy = False
    for name, value in headers or ():
        if name == SESSION_HEADER or name == MAC_HEADER:
            if (cert if name == SESSION_HEADER else tag) is not None:
                raise SignatureError(
                    f"header {name} appears twice", header=name, reason="malformed"
                )
            raw = value if isinstance(value, bytes) else b""
            if name == SESSION_HEADER:
                cert = raw
            else:
                tag = raw
        elif name in LEGACY_HEADERS:
            legacy = True
    if cert is None or tag is None:
        missing = SESSION_HEADER if cert is None else MAC_HEADER
        hint = " (envelope 1, a signature per heartbeat, is no longer accepted)" if legacy else ""
        raise SignatureError(
            f"header {missing} is missing{hint}", header=missing, reason="unsigned"
        )
    if len(tag) != MAC_BYTES:
        raise SignatureError(
            f"header {MAC_HEADER} must be {MAC_BYTES} bytes, got {len(tag)}",
            header=MAC_HEADER,
            reason="malformed",
        )
    return Envelope(cert, tag)


def _malformed(what: str) -> SignatureError:
    return SignatureError(
        f"header {SESSION_HEADER}: {what}", header=SESSION_HEADER, reason="malformed"
    )


def _read_id(cert: bytes, at: int, what: str) -> tuple[str, int]:
    if at >= len(cert):
        raise _malformed(f"too short for its {what}")
    n = cert[at]
    raw = cert[at + 1 : at + 1 + n]
    if n == 0 or len(raw) != n or not _ID_BYTES.issuperset(raw):
        raise _malformed(f"its {what} is not a valid id")
    return raw.decode("ascii"), at + 1 + n


def parse_certificate(cert: bytes) -> Certificate:
    """The fields of a session certificate; :class:`SignatureError` (``malformed``) naming
    what is wrong when it is not one (never its bytes)."""
    if not cert or cert[0] != CERT_VERSION:
        got = cert[0] if cert else "nothing"
        raise _malformed(f"version {got}, expected {CERT_VERSION}")
    kid = cert[1 : 1 + KEY_ID_LENGTH]
    if len(kid) != KEY_ID_LENGTH or kid.strip(_HEX):
        raise _malformed(f"its key id must be {KEY_ID_LENGTH} lowercase hex digits")
    server_id, at = _read_id(cert, 1 + KEY_ID_LENGTH, "server_id")
    incarnation, at = _read_id(cert, at, "incarnation")
    if len(cert) != at + MAC_KEY_BYTES + SIGNATURE_BYTES:
        raise _malformed(
            f"{len(cert)} bytes, expected {at + MAC_KEY_BYTES + SIGNATURE_BYTES} for its ids"
        )
    signed_end = at + MAC_KEY_BYTES
    return Certificate(
        kid.decode("ascii"),
        server_id,
        incarnation,
        cert[at:signed_end],
        cert[:signed_end],
        cert[signed_end:],
    )


def verify_certificate(key: Ed25519PublicKey, cert: Certificate) -> bool:
    """Whether ``cert``'s signature is ``key``'s."""
    try:
        key.verify(cert.signature, CERT_CONTEXT + cert.signed)
    except InvalidSignature:
        return False
    return True


__all__ = [
    "MAC_HEADER",
    "SESSION_HEADER",
    "Certificate",
    "Envelope",
    "SignatureError",
    "certificate",
    "headers",
    "mac",
    "mac_ok",
    "parse_certificate",
    "read_envelope",
    "verify_certificate",
]
