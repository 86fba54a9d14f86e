"""Pure: the timeline chart's data, bucketed by log time.

A bucket covers ``bucket`` seconds of *event* time (the ``time`` of the control events, not
the server's clock: a page opened later draws the same past). It counts the failovers
(``InstanceFailed``), the rebalances carried out (``RebalancePlanned`` that is not a dry run)
and the stream moves (``MigrationStarted``, and ``StreamAssigned`` for a reason other than a
new stream) of its events, and holds the stream counts by status as they were after the last
batch of events that fell into it. A bucket without events is not stored: the page holds the
counts of the bucket before it (a step chart).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from events import control as ev
from events.base import ControlEvent

#: assignments that are not a move (a stream placed for the first time)
_FIRST_PLACEMENTS = frozenset({"new_stream", "capacity_returned"})


def _kind(event: ControlEvent) -> str | None:
    """Which counter of a bucket ``event`` adds to, if any."""
    if isinstance(event, ev.InstanceFailed):
        return "failovers"
    if isinstance(event, ev.RebalancePlanned):
        return None if event.dry_run else "rebalances"
    if isinstance(event, ev.MigrationStarted):
        return "moves"
    if isinstance(event, ev.StreamAssigned) and event.reason not in _FIRST_PLACEMENTS:
        return "moves"
    return None


class Timeline:
    """The last ``points`` buckets of ``bucket`` seconds each (see the module docstring)."""

    def __init__(self, *, bucket: float, points: int) -> None:
        self.bucket_ms = max(1, round(bucket * 1000))
        self.points = points
        self._buckets: OrderedDict[int, dict[str, Any]] = OrderedDict()

    def _at(self, start: int) -> dict[str, Any] | None:
        """The bucket starting at ``start`` ms, made if new (None: older than what is kept)."""
        found = self._buckets.get(start)
        if found is not None:
            return found
        full = len(self._buckets) >= self.points
        if full and start < next(iter(self._buckets)):
            return None
        made = {"t": start, "failovers": 0, "rebalances": 0, "moves": 0, "streams": None}
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
            kind = _kind(event)
            if kind is None:
                continue
            bucket = self._at(self._start(event))
            if bucket is not None:
                bucket[kind] += 1
                changed[bucket["t"]] = bucket
        last = self._at(self._start(events[-1]))
        if last is not None:
            last["streams"] = dict(counts)
            changed[last["t"]] = last
        return [dict(changed[t]) for t in sorted(changed) if t in self._buckets]

    def view(self) -> list[dict[str, Any]]:
        """Every bucket kept, oldest first (copies)."""
        return [dict(b) for b in self._buckets.values()]
