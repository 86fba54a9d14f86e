"""Receivers ranked by deficit: lazy heaps, one pair per placement constraint.

For every distinct (zone, required_tags) seen in the streams there is a heap of the eligible
instances that satisfy it, ordered by deficit (target - load, largest first) and one ordered by
room (capacity - load). A load change bumps the instance's version and pushes a fresh entry;
entries with an old version are skipped when they surface. Each choice therefore costs
O(candidate_limit * log n), and a whole plan O(n log n).
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heapify, heappop, heappush

from control_plane.decide.balancer.model import InstanceView, StreamView

# (load - target or load - capacity, server_id, version): the smallest first element is the
# best receiver, server_id breaks ties deterministically.
_Entry = tuple[int, str, int]
_Key = tuple[str | None, frozenset[str]]
_Heaps = tuple[list[_Entry], list[_Entry]]


class ReceiverPool:
    """Mutable scratch state of one balancer call: loads, anti-affinity groups, heaps.

    Never escapes the call that created it, so the balancer stays a pure function.
    """

    def __init__(
        self,
        instances: Sequence[InstanceView],
        loads: dict[str, int],
        targets: dict[str, int],
        candidate_limit: int,
    ) -> None:
        self.load = loads
        self.target = targets
        self.capacity = {i.server_id: i.capacity for i in instances}
        self._eligible = [i for i in instances if i.eligible]
        self._version = dict.fromkeys(self.capacity, 0)
        self._groups: dict[str, dict[str, int]] = {}
        self._heaps: dict[_Key, _Heaps] = {}
        self._members: dict[str, list[_Heaps]] = {i.server_id: [] for i in self._eligible}
        self._excluded: set[str] = set()
        self._limit = candidate_limit

    def set_groups(self, groups: dict[str, dict[str, int]]) -> None:
        """Start from these anti-affinity counts (copied: the pool mutates its own)."""
        self._groups = {sid: dict(counts) for sid, counts in groups.items()}

    def add_group(self, server_id: str, group: str | None, delta: int = 1) -> None:
        """Record that ``server_id`` holds one more (or fewer) stream of ``group``."""
        if group is None:
            return
        counts = self._groups.setdefault(server_id, {})
        counts[group] = counts.get(group, 0) + delta

    def exclude(self, server_ids: set[str]) -> None:
        """Never offer these instances as receivers again (donors of the rebalance phase)."""
        self._excluded |= server_ids

    def readmit(self) -> None:
        """Offer the excluded instances as receivers again (for the final placement pass)."""
        excluded, self._excluded = self._excluded, set()
        for sid in sorted(excluded):
            self._refresh(sid)

    def shift(self, stream: StreamView, source: str | None, target: str) -> None:
        """Account for ``stream`` leaving ``source`` (None: it had no owner) for ``target``."""
        if source is not None:
            self.load[source] -= stream.weight
            self.add_group(source, stream.anti_affinity, -1)
            self._refresh(source)
        self.load[target] += stream.weight
        self.add_group(target, stream.anti_affinity)
        self._refresh(target)

    def choose(self, stream: StreamView, max_overshoot: int | None = None) -> str | None:
        """The best eligible receiver with room for ``stream``, or None.

        Best = stays within its target, then holds none of the stream's anti-affinity group,
        then the largest deficit, then the smallest id. With ``max_overshoot`` set, a receiver
        qualifies only if its load after the move exceeds its target by less than that (a
        rebalance move must lower the pair's worst excess).
        """
        dheap, rheap = self._heaps_for((stream.zone, stream.required_tags))
        weight, group = stream.weight, stream.anti_affinity
        roomiest = self._top(rheap)
        if roomiest is None or self.capacity[roomiest] - self.load[roomiest] < weight:
            return None  # no room anywhere: spare the walk down the deficit heap (a full zone)
        load, target, capacity = self.load, self.target, self.capacity
        popped: list[_Entry] = []
        best: str | None = None
        best_score: tuple[bool, bool, int, str] | None = None
        while dheap and len(popped) < self._limit:
            entry = heappop(dheap)
            sid = entry[1]
            if entry[2] != self._version[sid] or sid in self._excluded:
                continue  # stale or excluded: dropping it is what the lazy heap relies on
            popped.append(entry)
            if capacity[sid] - load[sid] < weight:
                continue
            overshoot = load[sid] + weight - target[sid]
            if max_overshoot is not None and overshoot >= max_overshoot:
                break  # later entries have smaller deficits, hence larger overshoots
            conflict = group is not None and self._groups.get(sid, {}).get(group, 0) > 0
            score = (overshoot > 0, conflict, overshoot, sid)
            if best_score is None or score < best_score:
                best, best_score = sid, score
            if not score[0] and not conflict:
                break  # nothing further down the heap can beat this one
        for entry in popped:
            heappush(dheap, entry)
        if best is None:
            # The best-deficit candidates are all full: fall back to the one with most room.
            overshoot = load[roomiest] + weight - target[roomiest]
            if max_overshoot is None or overshoot < max_overshoot:
                best = roomiest
        return best

    def _top(self, rheap: list[_Entry]) -> str | None:
        """The instance with the most room (current and not excluded), or None if none is."""
        while rheap:
            _, sid, version = rheap[0]
            if version == self._version[sid] and sid not in self._excluded:
                return sid
            heappop(rheap)
        return None

    def _heaps_for(self, key: _Key) -> _Heaps:
        heaps = self._heaps.get(key)
        if heaps is None:
            zone, tags = key
            members = [
                i.server_id
                for i in self._eligible
                if (zone is None or i.zone == zone) and tags <= i.tags
            ]
            heaps = (self._entries(members, self.target), self._entries(members, self.capacity))
            for sid in members:
                self._members[sid].append(heaps)
            self._heaps[key] = heaps
        return heaps

    def _entries(self, members: list[str], bound: dict[str, int]) -> list[_Entry]:
        load, version = self.load, self._version
        entries = [(load[s] - bound[s], s, version[s]) for s in members]
        heapify(entries)
        return entries

    def _refresh(self, sid: str) -> None:
        version = self._version[sid] + 1
        self._version[sid] = version
        if sid in self._excluded:
            return  # never offered again (readmit refreshes it); spare the heap pushes
        load = self.load[sid]
        for dheap, rheap in self._members.get(sid, ()):
            heappush(dheap, (load - self.target[sid], sid, version))
            heappush(rheap, (load - self.capacity[sid], sid, version))
