"""Transitions of the enrolled keys: which key a ``server_id``'s heartbeats must carry.

The fold only records the keys; it never looks at a heartbeat. Whether a heartbeat counts
is the orchestrator's check before ``decide`` sees it (docs/orchestrator.md, "Enrolled
workers"), so an instance registered before its enrollment (open enrollment) folds as ever.
"""

from __future__ import annotations

from events.enrollment import InstanceEnrolled, InstanceRevoked
from projections.fold.state import Enrollment, FindingKind
from projections.fold.transitions.common import Rejected
from projections.fold.transitions.draft import Draft


def instance_enrolled(d: Draft, e: InstanceEnrolled) -> None:
    """Always accepted: a second enrollment replaces the key (rotation), even a revoked one."""
    record = Enrollment(
        server_id=e.server_id,
        public_key=e.public_key,
        key_id=e.key_id,
        enrolled_at=e.time,
        enrolled_by=e.enrolled_by,
    )
    d.set(enrolled=d.enrolled.set(e.server_id, record))


def instance_revoked(d: Draft, e: InstanceRevoked) -> None:
    """The enrolled, unrevoked key ``key_id`` of ``server_id`` stops counting."""
    record = d.enrolled.get(e.server_id)
    if record is None or record.revoked_at is not None or record.key_id != e.key_id:
        raise Rejected(
            FindingKind.INVALID_TRANSITION,
            f"{e.server_id!r} has no unrevoked key {e.key_id!r} to revoke",
        )
    revoked = Enrollment(
        server_id=record.server_id,
        public_key=record.public_key,
        key_id=record.key_id,
        enrolled_at=record.enrolled_at,
        enrolled_by=record.enrolled_by,
        revoked_at=e.time,
    )
    d.set(enrolled=d.enrolled.set(e.server_id, revoked))
