"""Which heartbeats count: the signature check the orchestrator runs before ``decide``.

A heartbeat counts (registers an instance, keeps it alive, reports its streams) only when
the record's signature headers (:mod:`events.enrollment`) verify, against the key the
control log holds for its ``server_id``, over the record's exact value bytes; and its own
``time`` is newer than the last counted one of that incarnation (a replayed record counts
once at most) and not older than ``heartbeat_max_age`` (an old record of an earlier
incarnation cannot be replayed to supersede the live one). Anything else is refused with an
:class:`~events.errors.UnauthenticatedError` whose ``reason`` says why; the caller
dead-letters it, counts it and moves on.

With **open enrollment** (``STREAMPLANE_OPEN_ENROLLMENT``) a ``server_id`` without a key
counts unsigned, as before enrollment existed; an enrolled or revoked one is checked as
always, so enrolling a worker protects it even on an open cluster.

Why here and not in ``decide``: verifying is deterministic, but it needs the record's bytes
and headers (``decide`` gets decoded heartbeats) and costs ~50-100 us of a crypto library per
heartbeat, which the shell can measure and cache keys for. ``decide`` sees only heartbeats
that counted, so its recorded inputs replay as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import immutables
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from events.enrollment import (
    KEY_ID_HEADER,
    SIGNATURE_HEADER,
    SignatureError,
    parse_public_key,
    read_signature,
    verify,
)
from events.errors import UnauthenticatedError
from events.heartbeat import Heartbeat
from projections.fold.state import Enrollment

#: every reason a heartbeat is refused for (the metric's label values)
REASONS = (
    "unsigned",
    "malformed",
    "unenrolled",
    "revoked",
    "wrong_key",
    "bad_signature",
    "stale",
    "replayed",
)


class SignedRecord(Protocol):
    """What the gate reads of a Kafka record (aiokafka's ``ConsumerRecord`` is one)."""

    @property
    def value(self) -> bytes | None: ...

    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class HeartbeatGate:
    """The check of the module docstring; keeps the parsed keys and, per server, the time
    of the last heartbeat that counted (its incarnation's)."""

    def __init__(self, *, open_enrollment: bool, max_age: timedelta) -> None:
        self.open_enrollment = open_enrollment
        self.max_age = max_age
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._last: dict[str, tuple[str, datetime]] = {}

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
            raise _refused(sid, "revoked", "data.server_id", f"key {key.key_id} is revoked")
        try:
            signature = read_signature(record.headers)
        except SignatureError as exc:
            raise _refused(sid, exc.reason, f"headers.{exc.header}", str(exc)) from None
        if signature.key_id != key.key_id:
            raise _refused(
                sid,
                "wrong_key",
                f"headers.{KEY_ID_HEADER}",
                f"signed by key {signature.key_id}, enrolled is {key.key_id}",
            )
        value = record.value or b""  # a record without a value never decodes this far
        if not verify(self.public_key(key.public_key), value, signature.signature):
            raise _refused(
                sid, "bad_signature", f"headers.{SIGNATURE_HEADER}", "signature does not verify"
            )
        self._fresh(hb, now)

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


def _refused(server_id: str, reason: str, field: str, detail: str) -> UnauthenticatedError:
    return UnauthenticatedError(
        f"heartbeat of {server_id!r} refused ({reason}): {detail}",
        reason=reason,
        field=field,
        server_id=server_id,
    )
