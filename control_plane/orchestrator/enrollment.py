"""Which heartbeats count: the envelope check the orchestrator runs before ``decide``.

A heartbeat counts (registers an instance, keeps it alive, reports its streams) only when
the record's envelope (:mod:`events.session`) holds up:

1. its session certificate names the heartbeat's own ``server_id`` and ``incarnation``
   (else ``session_mismatch``) and the key the control log holds for that ``server_id``
   (else ``wrong_key``), and its Ed25519 signature verifies against that key (else
   ``bad_signature``);
2. the record's MAC under the certificate's key is right (else ``bad_mac``);
3. its own ``time`` is newer than the last counted one of that incarnation (a replayed record
   counts once at most; else ``replayed``) and not older than ``heartbeat_max_age`` (an old
   record of an earlier incarnation cannot be replayed to supersede the live one; else
   ``stale``).

Anything else is refused with an :class:`~events.errors.UnauthenticatedError` whose
``reason`` says why; the caller dead-letters it, counts it and moves on.

**The certificate cache.** Step 1's signature is verified once per certificate: the gate
keeps, per ``server_id``, the last certificate that verified and the enrollment it verified
against. A later record with the same certificate bytes under the same enrollment skips the
signature (steady state: parse nothing, one HMAC, ~5 us); a new incarnation, a re-enrolled
key or any other certificate is verified again. A revoked id is refused before the cache is
read, and its entry dropped. The cache holds one entry per enrolled id at most (an id
without a key never gets that far), and a new orchestrator starts with none: it verifies
each instance's certificate once.

With **open enrollment** (``STREAMPLANE_OPEN_ENROLLMENT``) a ``server_id`` without a key
counts unsigned, as before enrollment existed; an enrolled or revoked one is checked as
always, so enrolling a worker protects it even on an open cluster.

Why here and not in ``decide``: it is deterministic, but it needs the record's bytes and
headers (``decide`` gets decoded heartbeats) and a crypto library, whose cost the shell
measures and caches. ``decide`` sees only heartbeats that counted, so its recorded inputs
replay as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

import immutables
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from events.enrollment import parse_public_key
from events.errors import UnauthenticatedError
from events.heartbeat import Heartbeat
from events.session import (
    MAC_HEADER,
    SESSION_HEADER,
    Certificate,
    SignatureError,
    mac_ok,
    parse_certificate,
    read_envelope,
    verify_certificate,
)
from projections.fold.state import Enrollment

#: every reason a heartbeat is refused for (the metric's label values)
REASONS = (
    "unsigned",
    "malformed",
    "unenrolled",
    "revoked",
    "session_mismatch",
    "wrong_key",
    "bad_signature",
    "bad_mac",
    "stale",
    "replayed",
)

_CERT_FIELD = f"headers.{SESSION_HEADER}"


class SignedRecord(Protocol):
    """What the gate reads of a Kafka record (aiokafka's ``ConsumerRecord`` is one)."""

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class _Verified(NamedTuple):
    """A certificate whose signature verified, and the enrollment it verified against."""

    raw: bytes
    cert: Certificate
    enrollment: Enrollment


class HeartbeatGate:
    """The check of the module docstring; keeps the parsed keys, the verified certificates
    and, per server, the time of the last heartbeat that counted (its incarnation's)."""

    def __init__(self, *, open_enrollment: bool, max_age: timedelta) -> None:
        self.open_enrollment = open_enrollment
        self.max_age = max_age
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._last: dict[str, tuple[str, datetime]] = {}
        self._verified: dict[str, _Verified] = {}
        #: certificate signatures verified since start (a first sight or a re-verification)
        self.verifications = 0

    def check(
        self,
        record: SignedRecord,
        hb: Heartbeat,
        enrolled: immutables.Map[str, Enrollment],
        now: datetime,
    ) -> None:
        """Return if ``hb`` (decoded from ``record``) counts, else raise
        :class:`UnauthenticatedError`."""
        sid = hb.server_id
        key = enrolled.get(sid)
        if key is None:
            if self.open_enrollment:
                return
            raise _refused(sid, "unenrolled", "data.server_id", "has no enrolled key")
        if key.revoked_at is not None:
            self._verified.pop(sid, None)
            raise _refused(sid, "revoked", "data.server_id", f"key {key.key_id} is revoked")
        try:
            envelope = read_envelope(record.headers)
        except SignatureError as exc:
            raise _refused(sid, exc.reason, f"headers.{exc.header}", str(exc)) from None
        known = self._verified.get(sid)
        if known is not None and known.raw == envelope.certificate and known.enrollment == key:
            cert = known.cert
            if cert.incarnation != hb.incarnation:
                raise _mismatch(sid, cert, hb)
        else:
            cert = self._first_sight(envelope.certificate, hb, key)
        value = record.value or b""  # a record without a value never decodes this far
        if not mac_ok(cert.mac_key, envelope.certificate, value, envelope.mac):
            raise _refused(sid, "bad_mac", f"headers.{MAC_HEADER}", "MAC does not match the record")
        self._fresh(hb, now)

    def _first_sight(self, raw: bytes, hb: Heartbeat, key: Enrollment) -> Certificate:
        """Parse and verify a certificate not verified before (for this enrollment)."""
        sid = hb.server_id
        try:
            cert = parse_certificate(raw)
        except SignatureError as exc:
            raise _refused(sid, exc.reason, _CERT_FIELD, str(exc)) from None
        if cert.server_id != sid or cert.incarnation != hb.incarnation:
            raise _mismatch(sid, cert, hb)
        if cert.key_id != key.key_id:
            raise _refused(
                sid,
                "wrong_key",
                _CERT_FIELD,
                f"certificate signed by key {cert.key_id}, enrolled is {key.key_id}",
            )
        self.verifications += 1
        if not verify_certificate(self.public_key(key.public_key), cert):
            raise _refused(sid, "bad_signature", _CERT_FIELD, "certificate does not verify")
        self._verified[sid] = _Verified(raw, cert, key)
        return cert

    def _fresh(self, hb: Heartbeat, now: datetime) -> None:
        sid = hb.server_id
        if now - hb.time > self.max_age:
            raise _refused(sid, "stale", "time", f"sent {hb.time.isoformat()}, too old")
        last = self._last.get(sid)
        if last is not None and last[0] == hb.incarnation and hb.time <= last[1]:
            raise _refused(sid, "replayed", "time", f"not newer than {last[1].isoformat()}")
        self._last[sid] = (hb.incarnation, hb.time)

    def public_key(self, text: str) -> Ed25519PublicKey:
        """The parsed key of an enrolled key's text (parsed once per key)."""
        key = self._keys.get(text)
        if key is None:
            key = self._keys[text] = parse_public_key(text)
        return key


def _mismatch(server_id: str, cert: Certificate, hb: Heartbeat) -> UnauthenticatedError:
    what = "server_id" if cert.server_id != hb.server_id else "incarnation"
    return _refused(
        server_id,
        "session_mismatch",
        _CERT_FIELD,
        f"certificate of {cert.server_id!r} incarnation {cert.incarnation!r}, "
        f"the heartbeat's {what} differs",
    )


def _refused(server_id: str, reason: str, field: str, detail: str) -> UnauthenticatedError:
    return UnauthenticatedError(
        f"heartbeat of {server_id!r} refused ({reason}): {detail}",
        reason=reason,
        field=field,
        server_id=server_id,
    )
