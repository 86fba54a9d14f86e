"""Decision recordings: each leader cycle's inputs and outputs, one JSON line per item.

Why: ``decide`` is a pure function of what the shell hands it, so a recorded run is a test.
Replayed through ``decide`` (``control_plane.tools.decisions``), a recording must give the
same events and desired sets; a behaviour change shows up as a diff of a checked-in file
that someone reviews (docs/orchestrator.md, "Decision goldens"), as Temporal replays
workflow histories.

Off by default; ``STREAMPLANE_RECORD_DECISIONS=<path>`` makes the leader append to ``path``
(plain synchronous appends, one per cycle: a debugging aid, not for a loaded cluster). The
format (version 1), one JSON object per line, ``kind`` first:

* ``start``: a leader term begins (``source``, ``config``, the liveness's ``phi_window`` and
  ``watch_started_at``), followed by what the state is: ``log`` lines (control events whose
  fold it is, oldest first) when the recorder knows them, that is on a new cluster whose
  log starts with this term, else one ``state`` line (the canonical state, see
  ``projections.fold.canonical``, which ties the file to the state's layout); then one
  ``sighting`` per server the liveness knows, in its order (``at``, ``heartbeat``, and
  ``intervals_us``, the phi window, when any);
* ``cycle``: ``n``, ``now``, ``observer_lag_us``, ``check_balance``, ``ids`` (what
  ``new_id`` returned, in order), ``heartbeats`` (which of the cycle's ``observed`` and
  ``heartbeat`` lines ``decide`` got, by position, in its order) and ``watch_started_at``
  when the shell moved it; then its inputs: ``observed`` (a heartbeat the liveness observed,
  with ``at``, the time it was received), ``heartbeat`` (one ``decide`` got that the
  liveness did not observe), ``command``; then its outputs: ``event``, ``desired``,
  ``alert``, ``dropped``;
* ``end``: the term ended (the leader stepped down; ``reason``);
* ``note``: free text for reviewers, ignored by the replay.

Messages are in their CloudEvents wire form (``events.to_wire``), times ISO 8601.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from control_plane.decide import Decision, Inputs
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness, Sighting
from events import to_wire
from events.base import ControlEvent
from events.heartbeat import Heartbeat
from projections.fold.canonical import state_to_jsonable
from projections.fold.state import ClusterState

log = logging.getLogger("streamplane.orchestrator")

FORMAT_VERSION = 1
Line = dict[str, Any]
_US = timedelta(microseconds=1)


def dumps(line: Line) -> bytes:
    """One line of a recording (no sorted keys: ``kind`` comes first, as written)."""
    return orjson.dumps(line) + b"\n"


def start_lines(
    *,
    state: ClusterState,
    liveness: Liveness,
    config: DecideConfig,
    source: str,
    log: Sequence[ControlEvent] | None = None,
) -> list[Line]:
    """What a term starts from: the settings, the state (as ``log``, the events it is the
    fold of, when given) and what the liveness knows."""
    lines: list[Line] = [
        {
            "kind": "start",
            "version": FORMAT_VERSION,
            "source": source,
            "phi_window": liveness.phi_window,
            "watch_started_at": liveness.watch_started_at.isoformat(),
            "config": config.model_dump(mode="json"),
        }
    ]
    if log is None:
        lines.append({"kind": "state", "state": state_to_jsonable(state)})
    else:
        lines += ({"kind": "log", "event": to_wire(e)} for e in log)
    for sid, s in liveness.last.items():
        line = {"kind": "sighting", **_sighting(s)}
        window = liveness.intervals.get(sid)
        if window is not None and window.samples:
            line["intervals_us"] = list(window.samples)
        lines.append(line)
    return lines


def cycle_lines(
    n: int,
    inputs: Inputs,
    decision: Decision,
    *,
    now: datetime,
    observed: Iterable[Sighting],
    ids: Iterable[str],
    watch_started_at: datetime | None = None,
) -> list[Line]:
    """One cycle: its header, its inputs, then the outputs a replay must reproduce."""
    pool: list[Line] = [{"kind": "observed", **_sighting(s)} for s in observed]
    order = []
    for hb in inputs.heartbeats:
        i = _position(pool, hb)
        if i is None:  # decide got it, the liveness never observed it
            pool.append({"kind": "heartbeat", "heartbeat": to_wire(hb)})
            i = len(pool) - 1
        order.append(i)
    head: Line = {
        "kind": "cycle",
        "n": n,
        "now": now.isoformat(),
        "observer_lag_us": inputs.observer_lag // _US,
        "check_balance": inputs.check_balance,
        "heartbeats": order,
        "ids": list(ids),
    }
    if watch_started_at is not None:
        head["watch_started_at"] = watch_started_at.isoformat()
    commands = [{"kind": "command", "command": to_wire(c)} for c in inputs.commands]
    return [head, *pool, *commands, *output_lines(decision)]


def output_lines(decision: Decision) -> list[Line]:
    """What ``decide`` returned, as the lines a recording holds (and a replay compares)."""
    return [
        *({"kind": "event", "event": to_wire(e)} for e in decision.events),
        *({"kind": "desired", "desired": to_wire(d)} for d in decision.desired),
        *({"kind": "alert", "alert": a} for a in decision.alerts),
        *({"kind": "dropped", "dropped": x} for x in decision.dropped),
    ]


def _sighting(s: Sighting) -> Line:
    return {"at": s.received_at.isoformat(), "heartbeat": to_wire(s.heartbeat)}


def _position(pool: list[Line], hb: Heartbeat) -> int | None:
    """The latest line of the pool carrying this heartbeat (the shell hands ``decide`` the
    latest heartbeat of each server it read)."""
    wire = None
    for i in range(len(pool) - 1, -1, -1):
        if pool[i]["heartbeat"]["id"] == hb.id:
            wire = wire or to_wire(hb)
            if pool[i]["heartbeat"] == wire:
                return i
    return None


class DecisionRecorder:
    """Appends a leader's terms and cycles to a JSONL file (see the module docstring).

    The shell calls :meth:`start` when it takes over, :meth:`tap_ids` and :meth:`cycle`
    around each ``decide``, and :meth:`stop` when it steps down. The liveness's ``journal``
    is on only in between, so a standby keeps nothing. A write that fails is logged and
    ends the recording: it must never stop the leader.
    """

    def __init__(self, path: Path, liveness: Liveness) -> None:
        self.path = path
        self.liveness = liveness
        self._n = 0
        self._ids: list[str] = []
        self._watch: datetime | None = None
        self._broken = False

    @classmethod
    def open(
        cls, path: Path | None, liveness: Liveness, *, node: str = ""
    ) -> DecisionRecorder | None:
        """A recorder appending to ``path``, or None when recording is off. ``{node}`` in the
        path becomes ``node``: orchestrators sharing an environment (``streamplane demo``
        starts two) then write a file each, never one file in turns."""
        if path is None:
            return None
        return cls(Path(str(path).replace("{node}", node)), liveness)

    def start(
        self,
        *,
        state: ClusterState,
        config: DecideConfig,
        source: str,
        term: ControlEvent | None = None,
    ) -> None:
        """A term begins (``state`` includes its ``term`` event): record where from, and
        journal every sighting from now on. When the term is the log's first event, the
        state is written as that log, which any later state layout still folds."""
        if self._broken:
            return  # a write failed before: no journal nobody would take
        self._n = 0
        self._watch = self.liveness.watch_started_at
        self.liveness.journal = []
        log = [term] if term is not None and term.seq == 1 else None
        lines = start_lines(
            state=state, liveness=self.liveness, config=config, source=source, log=log
        )
        self._write(lines)

    def stop(self, reason: str) -> None:
        """The term ended: stop journaling (a standby records nothing)."""
        if self.liveness.journal is not None:
            self.liveness.journal = None
            self._write([{"kind": "end", "reason": reason}])

    def tap_ids(self, new_id: Callable[[], str]) -> Callable[[], str]:
        """``new_id``, remembering each id it hands out in this cycle."""
        self._ids = ids = []

        def tapped() -> str:
            ids.append(new_id())
            return ids[-1]

        return tapped

    def cycle(self, inputs: Inputs, decision: Decision, *, now: datetime) -> None:
        """Record one ``decide`` call: what it was given and what it returned."""
        live = self.liveness
        if live.journal is None:
            return  # not started (or stopped): nothing to pair the inputs with
        observed, live.journal = live.journal, []
        moved = live.watch_started_at if live.watch_started_at != self._watch else None
        self._watch = live.watch_started_at
        self._n += 1
        lines = cycle_lines(
            self._n,
            inputs,
            decision,
            now=now,
            observed=observed,
            ids=self._ids,
            watch_started_at=moved,
        )
        self._write(lines)

    def _write(self, lines: list[Line]) -> None:
        if self._broken:
            return
        try:
            with self.path.open("ab") as f:
                f.write(b"".join(map(dumps, lines)))
        except OSError as exc:
            self._broken = True
            self.liveness.journal = None
            log.error("recording decisions to %s failed, recording stops: %s", self.path, exc)
