"""The ``reason`` words the orchestrator writes into control events.

A reason is any ``snake_case`` word on the wire (:data:`events.ids.Reason`): readers must
accept words they do not know. These are the ones this build writes; docs/events.md
("Reasons") says what each means and which event carries it, and a unit test fails when one
is missing there. Kept apart from :mod:`events.control` so that the list reads as one table.
"""

from __future__ import annotations


class Reasons:
    """The reasons the orchestrator writes (any ``snake_case`` word is valid on the wire)."""

    HEARTBEAT = "heartbeat"
    INSTANCE_FAILED = "instance_failed"
    INSTANCE_LEFT = "instance_left"
    SUPERSEDED = "superseded"
    REBALANCE = "rebalance"
    IMBALANCE = "imbalance"
    DRAIN = "drain"
    NEW_STREAM = "new_stream"
    NO_CAPACITY = "no_capacity"
    CAPACITY_RETURNED = "capacity_returned"
    CONSISTENCY_REPAIR = "consistency_repair"
    ORPHANED = "orphaned"
    DUPLICATED = "duplicated"
    EMERGENCY_RECOVERY = "emergency_recovery"
    OPERATOR = "operator"
    TIMEOUT = "timeout"
    MASS_FAILURE = "mass_failure"
    HEARTBEATS_RESUMED = "heartbeats_resumed"
    FLAPPING = "flapping"
    START_FAILED = "start_failed"
    POISON = "poison"
    INSTANCE_REVOKED = "instance_revoked"


__all__ = ["Reasons"]
