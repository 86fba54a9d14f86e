"""Replaying decision recordings through ``decide``: the reading side of
:mod:`control_plane.orchestrator.recorder` (whose docstring describes the format).

A recording holds one *segment* per leader term: where it starts (settings, state, what the
liveness knew) and its cycles. :func:`replay` rebuilds the state and the liveness exactly as
the leader had them, runs ``decide`` on each cycle's recorded inputs (its ``now``, ids,
heartbeats with their receive times, commands, observer lag, ``check_balance``) and compares
the outputs with the recorded ones. Pure and deterministic: no clock, no Kafka.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import orjson

from control_plane.decide import Decision, Inputs, decide
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness, Sighting
from control_plane.orchestrator.recorder import Line, dumps, output_lines, start_lines
from events import decode_command, decode_event, decode_heartbeat
from events.base import ControlEvent
from projections.fold import apply, fold
from projections.fold.canonical import state_from_jsonable
from projections.fold.state import ClusterState

_INPUTS = frozenset({"observed", "heartbeat", "command"})
_OUTPUTS = frozenset({"event", "desired", "alert", "dropped"})
_HEADER = frozenset({"start", "log", "state", "sighting"})


@dataclass
class CycleRecord:
    """One recorded cycle: its header line, input lines and expected output lines."""

    head: Line
    inputs: list[Line] = field(default_factory=list)
    outputs: list[Line] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.head["n"])

    @property
    def now(self) -> datetime:
        return datetime.fromisoformat(self.head["now"])

    def lines(self) -> list[Line]:
        return [self.head, *self.inputs, *self.outputs]


@dataclass
class Segment:
    """One leader term of a recording."""

    header: list[Line]
    cycles: list[CycleRecord] = field(default_factory=list)
    notes: list[Line] = field(default_factory=list)
    end: Line | None = None

    def lines(self) -> list[Line]:
        tail = [] if self.end is None else [self.end]
        return [*self.notes, *self.header, *(x for c in self.cycles for x in c.lines()), *tail]


class Divergence(NamedTuple):
    """The first cycle whose outputs differ from the recording, with a readable diff."""

    cycle: int
    now: datetime
    diff: str

    def __str__(self) -> str:
        return f"cycle {self.cycle} (now {self.now.isoformat()}) diverged:\n{self.diff}"


def read(path: Path) -> list[Segment]:
    """The segments of a recording or golden file."""
    lines = [orjson.loads(raw) for raw in path.read_bytes().splitlines() if raw.strip()]
    return segments(lines)


def segments(lines: Iterable[Line]) -> list[Segment]:
    out: list[Segment] = []
    notes: list[Line] = []
    for line in lines:
        kind = line["kind"]
        if kind == "note":
            notes.append(line)
        elif kind == "start":
            out.append(Segment(header=[line], notes=notes))
            notes = []
        elif not out:
            raise ValueError(f"a {kind!r} line before any 'start' line")
        elif kind in _HEADER:
            out[-1].header.append(line)
        elif kind == "cycle":
            out[-1].cycles.append(CycleRecord(line))
        elif kind == "end":
            out[-1].end = line
        elif kind in _INPUTS | _OUTPUTS and out[-1].cycles:
            cycle = out[-1].cycles[-1]
            (cycle.inputs if kind in _INPUTS else cycle.outputs).append(line)
        else:
            raise ValueError(f"unexpected {kind!r} line")
    return out


def write(path: Path, segments: Sequence[Segment]) -> None:
    path.write_bytes(b"".join(dumps(x) for s in segments for x in s.lines()))


# --- rebuilding what the leader had -------------------------------------------------------


class Start(NamedTuple):
    state: ClusterState
    liveness: Liveness
    config: DecideConfig
    source: str
    #: the events ``state`` is the fold of, when the segment starts from a log
    log: list[ControlEvent] | None


def start_of(segment: Segment) -> Start:
    """The state, liveness, config and source the segment's first cycle starts from."""
    head, *rest = segment.header
    if head.get("version") != 1:
        raise ValueError(f"unsupported recording version {head.get('version')!r}")
    log = [decode_event(x["event"]) for x in rest if x["kind"] == "log"]
    canonical = next((x["state"] for x in rest if x["kind"] == "state"), None)
    if canonical is None and not log:
        raise ValueError("the segment has neither 'log' nor 'state' lines")
    state = fold(log) if canonical is None else state_from_jsonable(canonical)
    sightings = [x for x in rest if x["kind"] == "sighting"]
    liveness = Liveness.restored(
        watch_started_at=datetime.fromisoformat(head["watch_started_at"]),
        phi_window=int(head["phi_window"]),
        sightings=[_sighting(x) for x in sightings],
        intervals={
            x["heartbeat"]["data"]["server_id"]: x["intervals_us"]
            for x in sightings
            if x.get("intervals_us")
        },
    )
    config = DecideConfig.model_validate(head["config"])
    source = str(head["source"])
    return Start(state, liveness, config, source, log if canonical is None else None)


def _sighting(line: Line) -> Sighting:
    return Sighting(decode_heartbeat(line["heartbeat"]), datetime.fromisoformat(line["at"]))


def observe(liveness: Liveness, cycle: CycleRecord) -> None:
    """What the shell did to the liveness before this cycle's ``decide``."""
    for line in cycle.inputs:
        if line["kind"] == "observed":
            s = _sighting(line)
            liveness.observe(s.heartbeat, s.received_at)
    moved = cycle.head.get("watch_started_at")
    if moved is not None:
        liveness.watch_started_at = datetime.fromisoformat(moved)


def inputs_of(cycle: CycleRecord) -> Inputs:
    pool = [x for x in cycle.inputs if x["kind"] in ("observed", "heartbeat")]
    return Inputs(
        heartbeats=[decode_heartbeat(pool[i]["heartbeat"]) for i in cycle.head["heartbeats"]],
        commands=[decode_command(x["command"]) for x in cycle.inputs if x["kind"] == "command"],
        observer_lag=timedelta(microseconds=int(cycle.head["observer_lag_us"])),
        check_balance=bool(cycle.head["check_balance"]),
    )


def _ids(cycle: CycleRecord) -> tuple[Callable[[], str], list[str]]:
    """``new_id`` handing out the recorded ids, then made-up ones (a changed ``decide``
    may ask for more); and the list of what it handed out."""
    recorded = iter(cycle.head["ids"])
    used: list[str] = []

    def new_id() -> str:
        used.append(next(recorded, f"replay-{cycle.n}-{len(used) + 1}"))
        return used[-1]

    return new_id, used


# --- replay, check, regenerate, trim ------------------------------------------------------


def replay(segment: Segment) -> Iterator[tuple[CycleRecord, Decision, list[str]]]:
    """Each cycle with what ``decide`` now returns for it, and the ids it used."""
    state, liveness, config, source, _ = start_of(segment)
    for cycle in segment.cycles:
        observe(liveness, cycle)
        new_id, used = _ids(cycle)
        d = decide(
            state,
            liveness.view(),
            inputs_of(cycle),
            now=cycle.now,
            new_id=new_id,
            config=config,
            source=source,
        )
        state = d.state
        yield cycle, d, used


def check(segment: Segment) -> Divergence | None:
    """The first cycle whose outputs differ from the recorded ones (None: all agree)."""
    for cycle, decision, _ in replay(segment):
        actual = output_lines(decision)
        if actual != cycle.outputs:
            return Divergence(cycle.n, cycle.now, diff(cycle.outputs, actual))
    return None


def diff(expected: Sequence[Line], actual: Sequence[Line]) -> str:
    """Both outputs in brief, then a unified diff of them as indented JSON."""
    detail = difflib.unified_diff(
        _pretty(expected), _pretty(actual), "recorded", "decide now", lineterm=""
    )
    brief = f"recorded:   {_brief(expected)}\ndecide now: {_brief(actual)}"
    return "\n".join([brief, *detail])


def _brief(lines: Sequence[Line]) -> str:
    """``InstanceFailed w1, StreamAssigned s1, desired w0, alert``: a cycle's outputs."""
    parts = []
    for line in lines:
        kind = line["kind"]
        body = line.get(kind)
        if isinstance(body, dict):
            label = body["type"] if kind == "event" else kind
            parts.append(f"{label} {body.get('subject') or ''}".rstrip())
        else:
            parts.append(f"{kind}: {body}")
    return ", ".join(parts) or "(nothing)"


def _pretty(lines: Sequence[Line]) -> list[str]:
    options = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    return [
        row for line in lines for row in orjson.dumps(line, option=options).decode().split("\n")
    ]


def regenerate(segment: Segment) -> Segment:
    """The segment with each cycle's outputs (and ids) as ``decide`` now gives them: after
    an intended behaviour change, write this and review the file's diff."""
    cycles = []
    for cycle, decision, used in replay(segment):
        head = {**cycle.head, "ids": used}
        cycles.append(replace(cycle, head=head, outputs=output_lines(decision)))
    return replace(segment, cycles=cycles)


def trim(segment: Segment, first: int, last: int) -> Segment:
    """The cycles numbered ``first`` to ``last`` (inclusive), starting from the state and
    liveness the leader had before ``first``: the recorded events of the cycles before it
    are folded (and kept as the starting log, when the segment starts from one), their
    heartbeats observed."""
    state, liveness, config, source, log = start_of(segment)
    kept = []
    for cycle in segment.cycles:
        if cycle.n < first:
            observe(liveness, cycle)
            liveness.view()  # as the leader did before each decide
            for line in cycle.outputs:
                if line["kind"] == "event":
                    event = decode_event(line["event"])
                    state = apply(state, event)
                    if log is not None:
                        log.append(event)
        elif cycle.n <= last:
            kept.append(cycle)
    if not kept:
        raise ValueError(f"no cycle numbered {first} to {last}")
    header = start_lines(state=state, liveness=liveness, config=config, source=source, log=log)
    end = segment.end if kept[-1] is segment.cycles[-1] else None
    return Segment(header=header, cycles=kept, notes=segment.notes, end=end)


def summary(segment: Segment) -> Iterator[str]:
    """One line per cycle that has inputs or outputs: to pick a window to keep."""
    for c in segment.cycles:
        kinds = [x["kind"] for x in c.inputs]
        events = [x["event"]["type"] for x in c.outputs if x["kind"] == "event"]
        if kinds or c.outputs:
            yield (
                f"{c.n:6d} {c.head['now']}  heard {kinds.count('observed')}"
                f" commands {kinds.count('command')}  {' '.join(events)}"
            )
