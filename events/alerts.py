"""Alerts: the monitor's findings on ``<prefix>.alerts``, one record per status change.

``streamplane monitor`` (the seed's HealthMonitor around the pure AlertManager) writes an
:class:`AlertFired` when a rule's condition starts to hold and an :class:`AlertResolved` once
it has been clear for a while. The record key is the alert's ``key`` (``rule:subject``, e.g.
``zone_failures:eu-1a``); the topic is compacted, so its latest record per key is the alert's
current status and :func:`fold_alerts` of the whole topic is the set that fires now.

``evidence`` is a flat map of short texts (numbers as their JSON text, lists joined with
``,``): the shape Alertmanager gives its annotations, which every router and chat hook reads,
and one JSON Schema for every rule, old and new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, StringConstraints

from events.base import Message
from events.ids import Reason, ShortText

MAX_EVIDENCE = 32
_RANK = {"critical": 0, "warning": 1, "info": 2}

#: ``rule:subject``; the subject is an instance or stream id, a zone, a command type, or
#: ``cluster`` for cluster-wide signals
AlertKey = Annotated[str, StringConstraints(min_length=3, max_length=256)]
EvidenceName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AlertSeverity(StrEnum):
    """How urgent: ``critical`` wants someone now, ``warning`` within the day."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _Alert(Message):
    FAMILY: ClassVar[str] = "alert"
    SUBJECT_FIELD: ClassVar[str | None] = "key"

    key: AlertKey
    #: the part of ``key`` before its first colon (kept as a field for routing)
    rule: Reason
    severity: AlertSeverity
    summary: ShortText
    evidence: dict[EvidenceName, ShortText] = Field(default_factory=dict, max_length=MAX_EVIDENCE)
    #: what an operator should do about it
    action: ShortText
    #: the control-log ``seq`` the monitor had folded when it decided this (0: none yet)
    seq: int = Field(ge=0)
    #: status changes of this key that the rate limit held back before this one
    held_back: int = Field(default=0, ge=0)

    @property
    def about(self) -> str:
        """The part of ``key`` after the rule: what the alert is about."""
        return self.key.partition(":")[2]


class AlertFired(_Alert):
    """A rule's condition holds: the alert fires (once, until it is resolved)."""

    type: Literal["AlertFired"] = "AlertFired"


class AlertResolved(_Alert):
    """The condition of a firing alert has been clear for the resolve delay."""

    type: Literal["AlertResolved"] = "AlertResolved"


AlertMessage = AlertFired | AlertResolved
ALERT_TYPES: tuple[type[Message], ...] = (AlertFired, AlertResolved)


def fold_alerts(
    latest: Mapping[str, AlertMessage], messages: Iterable[AlertMessage]
) -> dict[str, AlertMessage]:
    """``latest`` (key -> its newest record) after ``messages``, in topic order: what a
    compacted ``<prefix>.alerts`` holds once compaction has run."""
    out = dict(latest)
    for message in messages:
        out[message.key] = message
    return out


def firing(latest: Mapping[str, AlertMessage]) -> list[AlertFired]:
    """The alerts whose latest record is :class:`AlertFired`, worst first, then by key."""
    fired = [m for m in latest.values() if isinstance(m, AlertFired)]
    return sorted(fired, key=lambda m: (_RANK[m.severity.value], m.key))


__all__ = [
    "ALERT_TYPES",
    "AlertFired",
    "AlertKey",
    "AlertMessage",
    "AlertResolved",
    "AlertSeverity",
    "firing",
    "fold_alerts",
]
