"""The engine's alerts as messages on ``<prefix>.alerts``, and back (pure).

:func:`to_message` turns one transition of :class:`control_plane.alerts.AlertManager` into an
:class:`events.alerts.AlertFired` or :class:`~events.alerts.AlertResolved`; :func:`restore`
turns the topic's latest record per key back into the engine's firing set, so that a monitor
that restarts does not fire again what already fires (the engine keeps its state in memory
only).
"""

from __future__ import annotations

from collections.abc import Mapping

import immutables
import orjson

from control_plane.alerts import Alert, AlertManager, AlertStatus, EngineState, Severity
from control_plane.alerts.model import AlertConfig, Evidence, Json
from events.alerts import AlertFired, AlertMessage, AlertResolved
from events.ids import EventId

TEXT_MAX = 4096
SOURCE = "streamplane/monitor"


def evidence_text(value: Json) -> str:
    """One evidence value as text: a string as it is, a list joined with ``,``, anything
    else as its JSON (``3``, ``0.25``, ``true``; a whole float as an integer: a count read
    from a metric is ``3``, not ``3.0``)."""
    if isinstance(value, str):
        return value[:TEXT_MAX]
    if isinstance(value, tuple):
        return ",".join(value)[:TEXT_MAX]
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return orjson.dumps(value).decode()


def evidence_map(evidence: Evidence) -> dict[str, str]:
    """The engine's evidence pairs as the message's map; an unknown value (None) is left
    out rather than written as a word a reader could take for data."""
    return {name[:64]: evidence_text(value) for name, value in evidence if value is not None}


def to_message(alert: Alert, *, message_id: EventId, source: str = SOURCE) -> AlertMessage:
    """The record of one transition; its ``time`` is when the engine decided it."""
    cls = AlertFired if alert.status is AlertStatus.FIRING else AlertResolved
    return cls(
        id=message_id,
        source=source,
        time=alert.at,
        key=alert.key,
        rule=alert.rule,
        severity=alert.severity.value,
        summary=alert.summary[:TEXT_MAX],
        evidence=evidence_map(alert.evidence),
        action=alert.action[:TEXT_MAX],
        seq=alert.seq,
        held_back=alert.held_back,
    )


def from_message(message: AlertMessage) -> Alert:
    """The engine's view of a record (evidence as the texts it was written as)."""
    status = AlertStatus.FIRING if isinstance(message, AlertFired) else AlertStatus.RESOLVED
    return Alert(
        message.key,
        Severity(message.severity.value),
        message.summary,
        tuple(sorted(message.evidence.items())),
        message.action,
        message.seq,
        status,
        message.time,
        message.held_back,
    )


def restore(latest: Mapping[str, AlertMessage], config: AlertConfig) -> AlertManager:
    """An engine whose firing set is what ``latest`` (the topic's newest record per key)
    says fires. It emits nothing for those keys while their conditions hold, and resolves
    each the usual way once its condition is clear; what it remembers of recent history
    (drops, rejections, baselines) it learns again from the log and the samples."""
    active: dict[str, Alert] = {
        key: from_message(message)
        for key, message in latest.items()
        if isinstance(message, AlertFired)
    }
    return AlertManager(config, EngineState(active=immutables.Map(active)))
