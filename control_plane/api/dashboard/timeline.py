"""Pure: the timeline chart's data, bucketed by log time.

A bucket covers ``bucket`` seconds of *event* time (the ``time`` of the control events, not
the server's clock: a page opened later draws the same past). It counts the failovers
(``InstanceFailed``), the rebalances carried out (``RebalancePlanned`` that is not a dry run)
and the stream moves of its events as ``projections.fold.churn`` defines them (a stream
getting an owner other than the one it was last assigned to: a ``StreamAssigned`` to another
server, even after waiting for capacity, or a ``MigrationCompleted``; a first placement is
not a move), and holds the stream counts by status as they were after the last
batch of events that fell into it. A bucket without events is not stored: the page holds the
counts of the bucket before it (a step chart).

Churn and downtime (issue 12, the figures ``streamplane audit churn`` gives for any window):
each bucket also counts its moves by reason (``reasons``) and the stream-seconds spent without
a running owner (``down_s``): the streams that were unassigned, assigned but not started, or
parked (``failed``) after the previous batch, times the event time until this batch's last
event, charged to that event's bucket (a long quiet outage lands in the bucket that ends it).
The page sums them over the chart for its churn line. Unlike ``audit churn``, the silence
before a failure is detected is not counted (the streams of a silent owner still read
``running`` until its ``InstanceFailed``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from events import control as ev
from events.base import ControlEvent

#: stream statuses without a running owner (``projections.fold.churn`` counts them down)
DOWN_STATUSES = ("unassigned", "assigned", "failed")


class Timeline:
    """The last ``points`` buckets of ``bucket`` seconds each (see the module docstring)."""

    def __init__(
        self,
        *,
        bucket: float,
        points: int,
        owners: dict[str, str] | None = None,
        down: int = 0,
    ) -> None:
        self.bucket_ms = max(1, round(bucket * 1000))
        self.points = points
        self._buckets: OrderedDict[int, dict[str, Any]] = OrderedDict()
        #: streams without a running owner after the last batch, and that batch's end (ms)
        self._down = down
        self._last_ms: int | None = None
        #: the server each stream was last assigned to; a migration's target and reason
        self._owner: dict[str, str] = dict(owners or {})
        self._migrating: dict[str, tuple[str, str]] = {}

    def _kind(self, event: ControlEvent) -> tuple[str, str] | None:
        """Which counter of a bucket ``event`` adds to, and why (a move's reason)."""
        if isinstance(event, ev.InstanceFailed):
            return "failovers", ""
        if isinstance(event, ev.RebalancePlanned):
            return None if event.dry_run else ("rebalances", "")
        sid = getattr(event, "stream_id", None)
        if isinstance(event, ev.StreamAssigned):
            previous = self._owner.get(event.stream_id)
            self._owner[event.stream_id] = event.server_id
            moved = previous is not None and previous != event.server_id
            return ("moves", event.reason) if moved else None
        if isinstance(event, ev.MigrationStarted):
            self._migrating[event.stream_id] = (event.to_server, event.reason)
        elif isinstance(event, ev.MigrationCompleted) and sid in self._migrating:
            target, reason = self._migrating.pop(sid)
            self._owner[sid] = target
            return "moves", reason
        elif isinstance(event, ev.MigrationAborted):
            self._migrating.pop(event.stream_id, None)
        elif isinstance(event, ev.StreamDeregistered):
            self._owner.pop(event.stream_id, None)
            self._migrating.pop(event.stream_id, None)
        return None

    def _at(self, start: int) -> dict[str, Any] | None:
        """The bucket starting at ``start`` ms, made if new (None: older than what is kept)."""
        found = self._buckets.get(start)
        if found is not None:
            return found
        full = len(self._buckets) >= self.points
        if full and start < next(iter(self._buckets)):
            return None
        made = {
            "t": start,
            "failovers": 0,
            "rebalances": 0,
            "moves": 0,
            "reasons": {},
            "down_s": 0.0,
            "streams": None,
        }
        older = bool(self._buckets) and start < next(reversed(self._buckets))
        self._buckets[start] = made
        if older:  # an event older than the newest bucket (a clock step between leaders)
            self._buckets = OrderedDict(sorted(self._buckets.items()))
        while len(self._buckets) > self.points:
            self._buckets.popitem(last=False)
        return made

    def _start(self, event: ControlEvent) -> int:
        ms = int(event.time.timestamp() * 1000)
        return ms - ms % self.bucket_ms

    def record(
        self, events: Sequence[ControlEvent], counts: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        """Count ``events`` into their buckets and set ``counts`` (the stream counts after
        them) on the last one's; returns the buckets that changed, oldest first."""
        if not events:
            return []
        changed: dict[int, dict[str, Any]] = {}
        for event in events:
            counted = self._kind(event)
            if counted is None:
                continue
            kind, why = counted
            bucket = self._at(self._start(event))
            if bucket is not None:
                bucket[kind] += 1
                if kind == "moves":
                    bucket["reasons"][why] = bucket["reasons"].get(why, 0) + 1
                changed[bucket["t"]] = bucket
        end_ms = int(events[-1].time.timestamp() * 1000)
        last = self._at(self._start(events[-1]))
        if last is not None:
            last["streams"] = dict(counts)
            if self._last_ms is not None and end_ms > self._last_ms and self._down:
                last["down_s"] = round(
                    last["down_s"] + self._down * (end_ms - self._last_ms) / 1000, 3
                )
            changed[last["t"]] = last
        self._down = sum(counts.get(status, 0) for status in DOWN_STATUSES)
        self._last_ms = end_ms if self._last_ms is None else max(self._last_ms, end_ms)
        return [_copy(changed[t]) for t in sorted(changed) if t in self._buckets]

    def view(self) -> list[dict[str, Any]]:
        """Every bucket kept, oldest first (copies)."""
        return [_copy(b) for b in self._buckets.values()]


def _copy(bucket: dict[str, Any]) -> dict[str, Any]:
    """A bucket the caller may keep: its nested ``reasons`` is copied too."""
    return {**bucket, "reasons": dict(bucket["reasons"])}
