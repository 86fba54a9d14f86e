"""What the rules need that the folded state does not keep: recent history, in time windows.

The fold keeps a failure *count* per instance, not when each failure happened; it knows a
stream is waiting, not since when. :func:`remember` reads the control events of each evaluation
(each ``seq`` once: a repeated or older event is skipped, so re-evaluating an observation counts
nothing twice) and the metric samples, and keeps only what the windows of :class:`AlertConfig`
still need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import NamedTuple, TypeVar

import immutables

from control_plane.alerts.baseline import Baseline, Verdict, update
from control_plane.alerts.errors import InvalidInput
from control_plane.alerts.model import DEAD_LETTERS, AlertConfig, Observation, Refusal
from events import control as ev
from events.base import ControlEvent

_T = TypeVar("_T")

#: the control events :func:`remember` reads: a caller may leave every other type out of its
#: observations (the monitor does, so that replaying a long log holds only these in memory)
REMEMBERED: tuple[type[ControlEvent], ...] = (
    ev.CommandRejected,
    ev.InstanceSuspected,
    ev.InstanceRecovered,
    ev.InstanceFailed,
    ev.StreamRegistered,
    ev.StreamUnassigned,
    ev.StreamFailed,
    ev.StreamAssigned,
)


class Drop(NamedTuple):
    """An instance went down: suspected, or failed without a suspicion first. ``open`` while a
    suspicion may still become a failure (the failure then counts no second time)."""

    at: datetime
    incarnation: str
    open: bool


class Rejection(NamedTuple):
    at: datetime
    reason: str
    detail: str


class Refused(NamedTuple):
    """The heartbeats refused of one claimed source within the window: the latest, how many."""

    last: Refusal
    refusals: int


class Memory(NamedTuple):
    last_seq: int = 0
    drops: immutables.Map[str, tuple[Drop, ...]] = immutables.Map()
    rejections: immutables.Map[str, tuple[Rejection, ...]] = immutables.Map()
    #: stream id -> since when it waits for a home (what ``state.unplaced`` holds)
    unplaced_since: immutables.Map[str, datetime] = immutables.Map()
    #: the last sample of every metric (a signal missing from one observation keeps it)
    values: immutables.Map[str, float] = immutables.Map()
    #: counter name -> when it last increased
    increased_at: immutables.Map[str, datetime] = immutables.Map()
    baselines: immutables.Map[str, Baseline] = immutables.Map()
    #: the last verdict of every learned signal
    verdicts: immutables.Map[str, Verdict] = immutables.Map()
    #: claimed server id -> its refused heartbeats within ``refused_window``
    refused: immutables.Map[str, Refused] = immutables.Map()


def remember(memory: Memory, obs: Observation, *, now: datetime, config: AlertConfig) -> Memory:
    """``memory`` after this observation's new events and samples, pruned to the windows."""
    fresh = [e for e in obs.events if e.seq > memory.last_seq]
    drops, rejections = _record(memory, fresh)
    horizon = now - max(config.flap_window, config.zone_window)
    drops = _prune(drops, lambda d: d.at > horizon)
    rejections = _prune(rejections, lambda r: r.at > now - config.reject_window)
    memory = memory._replace(
        last_seq=max([memory.last_seq, *(e.seq for e in fresh)]),
        drops=drops,
        rejections=rejections,
        unplaced_since=_unplaced_since(memory, obs, fresh, now),
        refused=_refused(memory.refused, obs.refused, now=now, config=config),
    )
    return _sample(memory, obs, now=now, config=config)


def _refused(
    seen: immutables.Map[str, Refused],
    new: Iterable[Refusal],
    *,
    now: datetime,
    config: AlertConfig,
) -> immutables.Map[str, Refused]:
    """Count the new refusals per source (at most ``refused_sources_max`` sources), then drop
    the sources not refused within ``refused_window``."""
    m = seen.mutate()
    for r in new:
        old = m.get(r.source)
        if old is None and len(m) >= config.refused_sources_max:
            continue
        m[r.source] = Refused(r, 1 if old is None else old.refusals + 1)
    counted = m.finish()
    horizon = now - config.refused_window
    stale = [source for source, entry in counted.items() if entry.last.at <= horizon]
    if not stale:
        return counted
    m = counted.mutate()
    for source in stale:
        del m[source]
    return m.finish()


def _record(
    memory: Memory, events: Iterable[ControlEvent]
) -> tuple[immutables.Map[str, tuple[Drop, ...]], immutables.Map[str, tuple[Rejection, ...]]]:
    drops, rejections = memory.drops, memory.rejections
    for e in events:
        if isinstance(e, ev.CommandRejected):
            seen = rejections.get(e.command_type, ())
            rejections = rejections.set(
                e.command_type, (*seen, Rejection(e.time, e.reason, e.detail))
            )
            continue
        if not isinstance(e, ev.InstanceSuspected | ev.InstanceRecovered | ev.InstanceFailed):
            continue
        past = drops.get(e.server_id, ())
        last = past[-1] if past else None
        pending = last is not None and last.open and last.incarnation == e.incarnation
        if isinstance(e, ev.InstanceSuspected):
            past = (*past, Drop(e.time, e.incarnation, open=True))
        elif pending and last is not None:  # recovered or failed: the suspicion counted already
            past = (*past[:-1], last._replace(open=False))
        elif isinstance(e, ev.InstanceFailed):
            past = (*past, Drop(e.time, e.incarnation, open=False))
        drops = drops.set(e.server_id, past)
    return drops, rejections


def _prune(
    entries: immutables.Map[str, tuple[_T, ...]], keep: Callable[[_T], bool]
) -> immutables.Map[str, tuple[_T, ...]]:
    """Drop what fell out of its window (and keys with nothing left)."""
    m = entries.mutate()
    for key, items in entries.items():
        kept = tuple(i for i in items if keep(i))
        if not kept:
            del m[key]
        elif len(kept) != len(items):
            m[key] = kept
    return m.finish()


def _unplaced_since(
    memory: Memory, obs: Observation, fresh: list[ControlEvent], now: datetime
) -> immutables.Map[str, datetime]:
    """Since when each waiting stream waits: the time of the event that left it homeless when
    this evaluation saw it, else ``now`` (a monitor that just started cannot know better)."""
    unplaced = obs.state.unplaced
    touched = {
        e.stream_id: e.time
        for e in fresh
        if isinstance(e, ev.StreamRegistered | ev.StreamUnassigned | ev.StreamFailed)
    }
    placed = {e.stream_id for e in fresh if isinstance(e, ev.StreamAssigned)}
    known = memory.unplaced_since
    m = immutables.Map[str, datetime]().mutate()
    for sid in unplaced:
        since = None if sid in placed else known.get(sid)  # placed meanwhile: waits anew
        m[sid] = since if since is not None else touched.get(sid, now)
    return m.finish()


def _sample(memory: Memory, obs: Observation, *, now: datetime, config: AlertConfig) -> Memory:
    """Keep each metric's last value; learn the signals; note when a counter went up."""
    values, baselines, verdicts = memory.values, memory.baselines, memory.verdicts
    increased_at = memory.increased_at
    specs = {s.name: s for s in config.signals}
    for name, value in sorted(obs.metrics.items()):
        value = float(value)
        if not math.isfinite(value):
            raise InvalidInput(f"Observation.metrics[{name!r}] must be finite, got {value!r}")
        spec = specs.get(name)
        if spec is not None:
            known = baselines.get(name)
            start = (
                Baseline(spec.baseline) if known is None else known._replace(config=spec.baseline)
            )
            learned, verdict = update(start, value)
            baselines, verdicts = baselines.set(name, learned), verdicts.set(name, verdict)
        previous = values.get(name)
        # the first sample only sets the level; a counter that went down was reset (a
        # restart), so anything it shows then is new
        if name == DEAD_LETTERS and previous is not None and value != previous and value > 0:
            increased_at = increased_at.set(name, now)
        values = values.set(name, value)
    return memory._replace(
        values=values, baselines=baselines, verdicts=verdicts, increased_at=increased_at
    )
