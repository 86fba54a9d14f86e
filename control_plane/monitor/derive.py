"""Signals derived from what the monitor reads, without I/O (time is passed in).

- :func:`quantile`: one heartbeat-latency sample per evaluation from the latencies seen;
- :class:`FailoverWindow`: failovers per minute from the ``InstanceFailed`` events' times;
- :class:`SeqIndex`: a consumer's committed offset on the control log as a lag in ``seq``
  (offsets are not seqs: every transaction adds a commit marker), from the positions the
  monitor's own follower passed;
- :func:`remembered`: the control events the alert engine reads, so replaying a long log at
  start-up holds only those.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from control_plane.alerts.memory import REMEMBERED
from events.base import ControlEvent
from events.control import InstanceFailed


def quantile(samples: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile of ``samples`` (None for none): a value that was
    really seen, so a burst of one slow heartbeat moves it only when it is many."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def remembered(events: Iterable[ControlEvent]) -> list[ControlEvent]:
    """The events :func:`control_plane.alerts.memory.remember` reads; the rest it ignores."""
    return [e for e in events if isinstance(e, REMEMBERED)]


class FailoverWindow:
    """Times of the failovers (``InstanceFailed``) within ``window`` before the last ``rate``."""

    def __init__(self, window: timedelta) -> None:
        self.window = window
        self._times: deque[datetime] = deque()

    def observe(self, events: Iterable[ControlEvent]) -> None:
        self._times.extend(e.time for e in events if isinstance(e, InstanceFailed))

    def rate(self, now: datetime) -> float:
        """Failovers per minute over the window ending ``now`` (events' own times)."""
        since = now - self.window
        while self._times and self._times[0] <= since:
            self._times.popleft()
        recent = sum(1 for t in self._times if t <= now)
        return recent / (self.window.total_seconds() / 60)


class SeqIndex:
    """``(position, seq)`` pairs of the control log: after reading every record before
    ``position``, the fold stood at ``seq``. Bounded: when full, every other pair is dropped
    (the oldest stays), so it spans the whole history at a resolution that halves."""

    def __init__(self, size: int) -> None:
        if size < 2:
            raise ValueError(f"monitor_seq_index: at least 2 positions, got {size}")
        self.size = size
        self._positions: list[int] = []
        self._seqs: list[int] = []

    def note(self, position: int, seq: int) -> None:
        if self._positions and position <= self._positions[-1]:
            return
        if self._seqs and seq == self._seqs[-1]:
            return  # no new event: the earliest position of this seq says it all
        self._positions.append(position)
        self._seqs.append(seq)
        if len(self._positions) > self.size:
            self._positions = self._positions[:1] + self._positions[2::2]
            self._seqs = self._seqs[:1] + self._seqs[2::2]

    def lag(self, offset: int, seq_now: int) -> int | None:
        """How many seqs a reader whose next offset is ``offset`` is behind ``seq_now``: at
        most one follower poll too many (at least, for an offset older than every pair kept);
        None before the first pair.

        The control log is written in transactions, so every read of the follower ends with a
        commit marker, and a consumer that has read every event commits the marker's own
        offset (its next *record*): ``offset`` one before a noted position counts as there."""
        if not self._positions:
            return None
        i = bisect.bisect_right(self._positions, offset + 1) - 1
        seq_then = self._seqs[max(i, 0)]
        return max(0, seq_now - seq_then)
