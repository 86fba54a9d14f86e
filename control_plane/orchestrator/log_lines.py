"""What the leader logs about the events it wrote: one INFO line per cycle, one DEBUG line per
event; and ``decide``'s alerts, each once and then at most once a minute (:class:`AlertLines`).

Why not an INFO line per event: under load (bench/latency.py, 1,000 commands/s) formatting
and writing them was ~23% of a busy cycle. The per-cycle line says which seqs and which
kinds of event; the per-event lines, at DEBUG, carry the event's coordinates as ``extra``
fields (``event_id``, ``seq``, ``epoch``, ``causation_id``, ``correlation_id``), which JSON
logs (``telemetry.logs``) keep, so a line leads to ``streamplane audit`` and back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from events.base import ControlEvent

log = logging.getLogger("streamplane.orchestrator")

#: subjects shown per event type in the cycle's summary line
SHOWN = 5


def event_extra(e: ControlEvent) -> dict[str, Any]:
    """The ``extra=`` of a log line about ``e`` (its coordinates in the log)."""
    return {
        "event_id": e.id,
        "seq": e.seq,
        "epoch": e.epoch,
        "causation_id": e.causationid,
        "correlation_id": e.correlationid,
    }


def log_written(events: Sequence[ControlEvent]) -> None:
    """One INFO line for what a cycle wrote, and with DEBUG on one line per event."""
    if not events:
        return
    last = events[-1]
    if log.isEnabledFor(logging.INFO):  # the summary is built only for someone to read it
        log.info(
            "seq %d..%d: %s",
            events[0].seq,
            last.seq,
            summary(events),
            extra={"seq": last.seq, "epoch": last.epoch},
        )
    if log.isEnabledFor(logging.DEBUG):
        for e in events:
            log.debug("seq %d %s %s", e.seq, e.type, e.subject or "", extra=event_extra(e))  # type: ignore[attr-defined]


def summary(events: Sequence[ControlEvent]) -> str:
    """``StreamAssigned x3 s1,s2,s3; InstanceFailed w2``: what a cycle wrote, briefly."""
    groups: dict[str, list[str]] = {}
    for e in events:
        groups.setdefault(e.type, []).append(e.subject or "")  # type: ignore[attr-defined]
    parts = []
    for type_, subjects in groups.items():
        shown = ",".join(s for s in subjects[:SHOWN] if s)
        more = "..." if len(subjects) > SHOWN else ""
        count = f" x{len(subjects)}" if len(subjects) > 1 else ""
        parts.append(f"{type_}{count} {shown}{more}".rstrip())
    return "; ".join(parts)


class AlertLines:
    """``decide``'s alerts as WARNING lines without flooding the log.

    ``decide`` reports a condition again every cycle it still holds (a stream no live instance
    can take is "no capacity" ten times a second while other instances have room). An alert is
    logged when it first appears, then at most once per ``every`` while it keeps coming, with
    how many reports that line stands for; one unreported for ``every`` is forgotten, so its
    return is logged at once. The decision-alerts counter still counts every report."""

    def __init__(self, every: timedelta = timedelta(seconds=60)) -> None:
        self.every = every
        #: alert -> (when last logged, reports since then, when last reported)
        self._seen: dict[str, tuple[datetime, int, datetime]] = {}

    def log(self, alerts: Sequence[str], now: datetime) -> None:
        if self._seen:
            stale = [a for a, (_, _, last) in self._seen.items() if now - last >= self.every]
            for alert in stale:
                del self._seen[alert]
        for alert in dict.fromkeys(alerts):
            seen = self._seen.get(alert)
            if seen is None:
                log.warning("alert: %s", alert)
                self._seen[alert] = (now, 0, now)
            elif now - seen[0] >= self.every:
                since = int((now - seen[0]).total_seconds())
                log.warning(
                    "alert: %s (again; %d more report(s) in %d s)", alert, seen[1] + 1, since
                )
                self._seen[alert] = (now, 0, now)
            else:
                self._seen[alert] = (seen[0], seen[1] + 1, now)
