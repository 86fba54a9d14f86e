"""What a replay shows, beside what really happened (pure).

For the real log and the simulated one, over the same window:

- **moves** and their reasons, **unowned stream-seconds** (a stream registered without a
  running owner, :mod:`projections.fold.churn`) plus the **silent stream-seconds** before a
  failure was declared (the failed incarnation's streams, from when it was last heard to its
  ``InstanceFailed``: what ``fail_after`` costs);
- **max load factor**: the highest held weight over capacity of any active instance;
- **time to recover**, per failure: from when the failed instance was last heard until every
  stream it held runs again (None: not within the window).

And whether the simulation reproduced the log: the first cycle whose events differ (ids
generated in the run are compared by position, not by value).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from events import control as ev
from events import to_wire
from events.base import ControlEvent
from projections.fold.churn import ChurnCounter, is_up
from projections.fold.state import GONE_STATUSES, ClusterState

#: fields that hold ids the run generated (compared by first appearance, not by value)
_ID_FIELDS = frozenset({"id", "causationid", "correlationid", "migration_id", "plan_id"})
#: fields that hold an instance id
_SERVER_FIELDS = ("server_id", "from_server", "to_server")


def normalized(events: Iterable[ControlEvent], ids: dict[str, str]) -> list[dict[str, Any]]:
    """The events' wire form with each generated id replaced by ``#k``, k its order of
    first appearance in ``ids`` (shared across calls: references stay consistent)."""

    def walk(value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if key in _ID_FIELDS and isinstance(value, str):
            return ids.setdefault(value, f"#{len(ids) + 1}")
        return value

    return [walk(to_wire(e)) for e in events]


def first_divergence(results: Iterable[Any]) -> dict[str, Any] | None:
    """The first replayed cycle whose simulated events differ from the log's."""
    real_ids: dict[str, str] = {}
    sim_ids: dict[str, str] = {}
    for r in results:
        real, sim = normalized(r.real, real_ids), normalized(r.simulated, sim_ids)
        if real != sim:
            return {
                "cycle": r.mark.n,
                "now": r.mark.now.isoformat(),
                "real": [f"{e['type']} {e.get('subject') or ''}".rstrip() for e in real],
                "simulated": [f"{e['type']} {e.get('subject') or ''}".rstrip() for e in sim],
            }
    return None


def _load_factor(state: ClusterState, server_id: str) -> float:
    inst = state.instances.get(server_id)
    if inst is None or inst.status in GONE_STATUSES:
        return 0.0
    return inst.calculate_load_factor()


class _Recovery:
    """Failures in the window and how long until their streams ran again."""

    def __init__(self, heard: Mapping[str, datetime]) -> None:
        self.heard = heard
        self.open: list[tuple[str, datetime, set[str]]] = []
        self.done: list[dict[str, Any]] = []
        self.silent_s = 0.0

    def failed(self, before: ClusterState, e: ev.InstanceFailed) -> None:
        held = set(before.held.get(e.server_id, ()))
        start = min(self.heard.get(e.id, e.time), e.time)
        self.silent_s += len(held) * (e.time - start).total_seconds()
        if held:
            self.open.append((e.server_id, start, held))
        else:  # it held nothing: nothing to recover
            self.done.append({"server_id": e.server_id, "recover_s": 0.0})

    def moved(self, state: ClusterState, e: ControlEvent) -> None:
        sid = getattr(e, "stream_id", None)
        for server, start, pending in list(self.open):
            if sid in pending and (
                is_up(state, state.streams.get(sid)) or sid not in state.streams
            ):
                pending.discard(sid)
            if sid is not None and not pending:
                self.open.remove((server, start, pending))
                self.done.append(
                    {"server_id": server, "recover_s": (e.time - start).total_seconds()}
                )

    def result(self) -> list[dict[str, Any]]:
        unfinished = [{"server_id": s, "recover_s": None} for s, _, _ in self.open]
        return self.done + unfinished


def median_start_delay(
    events: Iterable[ControlEvent], *, since: datetime, until: datetime
) -> float | None:
    """The median seconds from a stream's assignment (or migration start) to its start
    (``StreamStarted`` / ``MigrationCompleted``) in the window: how fast the workers were."""
    told: dict[str, datetime] = {}
    delays: list[float] = []
    for e in events:
        if e.time > until:
            break
        if isinstance(e, ev.StreamAssigned | ev.MigrationStarted):
            told[e.stream_id] = e.time
        elif isinstance(e, ev.StreamStarted | ev.MigrationCompleted) and e.time >= since:
            start = told.pop(e.stream_id, None)
            if start is not None:
                delays.append((e.time - start).total_seconds())
    return statistics.median(delays) if delays else None


def figures(
    events: Sequence[ControlEvent],
    *,
    since: datetime,
    until: datetime,
    heard: Mapping[str, datetime],
) -> dict[str, Any]:
    """The window's figures for ``events`` (a whole log: everything before ``since`` too)."""
    # the silence before each failure is counted here, from the recorded heartbeats: the
    # same measure for the real log and a simulated one that may fail without suspecting
    counter = ChurnCounter(since=since, until=until, count_silence=False)
    recovery = _Recovery(heard)
    state, peak = ClusterState(), 0.0
    opened = False
    for e in events:
        if e.time > until:
            break
        before = state
        counter.feed(e)
        state = counter.state
        if e.time < since:
            continue
        if not opened:
            opened = True
            peak = max((_load_factor(before, s) for s in before.instances), default=0.0)
        gone = isinstance(e, ev.InstanceFailed) and state.instances.get(
            e.server_id
        ) is not before.instances.get(e.server_id)
        if isinstance(e, ev.InstanceFailed) and gone:
            recovery.failed(before, e)
        recovery.moved(state, e)
        for name in _SERVER_FIELDS:
            server = getattr(e, name, None)
            if isinstance(server, str):
                peak = max(peak, _load_factor(state, server))
    return _summary(counter, recovery, peak)


def _summary(counter: ChurnCounter, recovery: _Recovery, peak: float) -> dict[str, Any]:
    churn = counter.report().as_dict(per_stream=False)
    recovered = recovery.result()
    times = [r["recover_s"] for r in recovered if r["recover_s"] is not None]
    return {
        "moves": churn["moves"],
        "moves_by_reason": churn["moves_by_reason"],
        "streams_moved": churn["streams_moved"],
        "unowned_stream_s": round(churn["unowned_stream_s"] + recovery.silent_s, 6),
        "silent_stream_s": round(recovery.silent_s, 6),
        "max_load_factor": round(peak, 6),
        "failures": len(recovered),
        "time_to_recover_s": max(times) if times else None,
        "unrecovered": sum(1 for r in recovered if r["recover_s"] is None),
        "recoveries": recovered,
    }


__all__ = ["figures", "first_divergence", "median_start_delay", "normalized"]
