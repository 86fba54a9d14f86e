"""Recorded cycles through ``decide`` again (pure: values in, values out; no clock, no Kafka).

The leader's cycle marks (:mod:`control_plane.decide.marks`) say what each cycle saw; the
heartbeats and commands they cite are looked up by position. A term is rebuilt from its
term mark (the liveness at the take-over) and the log up to its ``LeaderElected``; then
every cycle observes its heartbeats at the recorded instants and, from ``since`` on, runs
``decide`` with the simulation's settings. Before ``since`` the state follows the log (the
simulation starts from what really was), so a window can begin mid-term.

Workers: ``recorded`` hands ``decide`` the heartbeats exactly as they were (the recorded run
then reproduces exactly); ``obedient`` rewrites what each worker reports to what the
*simulated* desired set told it, a stream running ``start_delay`` after it was assigned
(a failed start stays failed), while when it beat, and whether it was alive, stay as
recorded. Reality only tells what the workers did with the real orders; ``obedient`` is the
plausible model for other orders.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from control_plane.decide import Inputs, decide
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness
from control_plane.decide.liveness import Sighting as Seen
from control_plane.decide.marks import CycleMark, MarkRecord, TermMark
from events import control as ev
from events.base import Command, ControlEvent
from events.heartbeat import Heartbeat, StreamReport, StreamRunState
from projections.fold import apply
from projections.fold.state import ClusterState

Workers = Literal["recorded", "obedient"]


class RecordMissingError(LookupError):
    """A cited heartbeat or command is no longer in its topic (retention), or the marks
    have a hole: the window cannot be replayed exactly."""

    retriable = False


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the topics hold, by position: ``heartbeats[(partition, offset)]`` and
    ``commands[offset]`` (None: the record did not decode, and the leader skipped it too)."""

    log: Sequence[ControlEvent]
    marks: Sequence[MarkRecord]
    heartbeats: Mapping[tuple[int, int], Heartbeat | None]
    commands: Mapping[int, Command | None]


@dataclass(slots=True)
class CycleResult:
    """One replayed cycle: the events the log holds for it and the simulation's."""

    mark: CycleMark
    real: tuple[ControlEvent, ...]
    simulated: tuple[ControlEvent, ...]
    #: InstanceFailed event id -> when that incarnation was last heard (real and simulated)
    last_heard: dict[str, datetime] = field(default_factory=dict)
    #: the state's seq before the cycle (the first one's: where the simulation forks)
    seq_before: int = 0
    #: a take-over's ``LeaderElected``, renumbered onto the simulated state
    term_events: tuple[ControlEvent, ...] = ()


@dataclass(slots=True)
class Term:
    """A term mark and the cycles of its records, oldest first."""

    node: str
    mark: TermMark
    cycles: list[CycleMark]


def terms(marks: Sequence[MarkRecord]) -> list[Term]:
    """The terms the marks hold (records before the first term mark are dropped: the
    liveness they start from is unknown)."""
    out: list[Term] = []
    for record in marks:
        if record.term is not None:
            out.append(Term(record.node, record.term, list(record.cycles)))
        elif out and out[-1].mark.epoch == record.epoch:
            out[-1].cycles.extend(record.cycles)
    for term in out:
        for a, b in itertools.pairwise(term.cycles):
            if b.n != a.n + 1:
                raise RecordMissingError(f"cycle marks {a.n + 1}..{b.n - 1} of epoch "
                                         f"{term.mark.epoch} are missing")  # fmt: skip
    return out


def configured(recorded: Mapping[str, Any], overrides: Mapping[str, Any]) -> DecideConfig:
    """The recorded config with ``overrides`` (a bad value: pydantic names the field)."""
    changes = dict(overrides)
    balancer = {**recorded.get("balancer", {}), **changes.pop("balancer", {})}
    return DecideConfig.model_validate({**recorded, **changes, "balancer": balancer})


def _liveness(term: TermMark, recorded: Recorded) -> Liveness:
    sightings = []
    for s in term.sightings:
        hb = recorded.heartbeats.get((s.partition, s.offset))
        if hb is not None:  # gone with retention: that server is long silent
            sightings.append(Seen(hb, s.received_at))
    return Liveness.restored(
        watch_started_at=term.watch_started_at,
        phi_window=term.phi_window,
        sightings=sightings,
        intervals=term.intervals,
    )


def _heartbeat(recorded: Recorded, partition: int, offset: int) -> Heartbeat | None:
    key = (partition, offset)
    if key not in recorded.heartbeats:
        raise RecordMissingError(f"heartbeat {partition}:{offset} is not in the topic any more")
    return recorded.heartbeats[key]


def _commands(recorded: Recorded, span: tuple[int, int] | None) -> list[Command]:
    out = []
    for offset in range(*(span or (0, 0))):
        if offset not in recorded.commands:
            raise RecordMissingError(f"command at offset {offset} is not in the topic any more")
        command = recorded.commands[offset]
        if command is not None:
            out.append(command)
    return out


def obedient(hb: Heartbeat, state: ClusterState, at: datetime, delay: timedelta) -> Heartbeat:
    """``hb`` as a worker that does what ``state`` tells it would have sent it."""
    inst = state.instances.get(hb.server_id)
    if inst is None or inst.incarnation != hb.incarnation:
        return hb
    failed = {r.stream_id for r in hb.streams if r.state is StreamRunState.FAILED}
    reports = []
    for sid in sorted(state.held.get(hb.server_id, ())):
        s = state.streams[sid]
        m = s.migration_state
        told = m.started_at if m is not None and m.to_server == hb.server_id else s.assigned_at
        if sid in failed:
            run = StreamRunState.FAILED
        elif told is not None and at - told >= delay:
            run = StreamRunState.RUNNING
        else:
            run = StreamRunState.STARTING
        reports.append(StreamReport(stream_id=sid, state=run))
    return hb.model_copy(update={"streams": tuple(reports), "desired_mismatch": ()})


@dataclass(slots=True)
class Simulation:
    """Settings of a run: ``overrides`` of each term's recorded ``DecideConfig`` (its JSON
    form; ``balancer`` a dict of its own fields), the worker model."""

    since: datetime
    until: datetime
    overrides: Mapping[str, Any] = field(default_factory=dict)
    workers: Workers = "recorded"
    start_delay: timedelta = timedelta(seconds=1)
    #: called with each cycle replayed (progress)
    on_cycle: Callable[[CycleMark], None] | None = None


def run(recorded: Recorded, sim: Simulation) -> Iterator[CycleResult]:
    """Each cycle of the window, replayed (see the module docstring)."""
    replayer = _Replayer(recorded, sim)
    for term in terms(recorded.marks):
        if not term.cycles or term.cycles[-1].now < sim.since or term.cycles[0].now > sim.until:
            continue
        replayer.begin(term)
        for cycle in term.cycles:
            if cycle.now > sim.until:
                return
            result = replayer.step(term, cycle)
            if result is not None:
                yield result


class _Replayer:
    """The state and liveness of a replay, one cycle at a time."""

    def __init__(self, recorded: Recorded, sim: Simulation) -> None:
        self.recorded = recorded
        self.sim = sim
        self.log_by_seq = {e.seq: e for e in recorded.log}
        self.state = ClusterState()
        #: True once a cycle ran through decide: the state is the simulation's from then on
        self.simulating = False
        self.config = DecideConfig()
        self.liveness = Liveness(watch_started_at=sim.since)
        self.positions: dict[int, int] = {}
        self.real_seq = 0
        self.term_events: tuple[ControlEvent, ...] = ()
        self.source = "streamplane/orchestrator"
        self._ids = itertools.count(1)

    def begin(self, term: Term) -> None:
        """A term starts: its state (see :meth:`_follow_log`), its liveness and settings."""
        mark = term.mark
        elected = self.log_by_seq.get(mark.seq)
        if elected is None:
            raise RecordMissingError(f"the log has no seq {mark.seq} (the term's start)")
        if self.simulating:  # the new leader takes over the simulated state
            term_event = elected.model_copy(update={"seq": self.state.seq + 1})
            self.state = apply(self.state, term_event)
            self.term_events = (term_event,)
        else:
            self._follow_log(mark.seq)
        self.config = configured(mark.config, self.sim.overrides)
        self.liveness = _liveness(mark, self.recorded)
        self.positions = dict(mark.positions)
        self.real_seq = mark.seq
        self.source = elected.source  # the leader's, as on every event of its term

    def _follow_log(self, seq: int) -> None:
        """Before the window: the state is the log's, up to ``seq``."""
        for s in range(self.state.seq + 1, seq + 1):
            event = self.log_by_seq.get(s)
            if event is not None:
                self.state = apply(self.state, event)

    def _observe(self, cycle: CycleMark, obey: bool) -> dict[str, Heartbeat]:
        """The cycle's heartbeat reads, observed at their instants; the latest per server."""
        latest: dict[str, Heartbeat] = {}
        for batch in cycle.batches:
            refused = set(batch.refused)  # the leader's gate said no: so does the replay
            for partition, nxt in batch.positions:
                for offset in range(self.positions.get(partition, nxt), nxt):
                    if (partition, offset) in refused:
                        continue
                    hb = _heartbeat(self.recorded, partition, offset)
                    if hb is None:
                        continue
                    if obey:
                        hb = obedient(hb, self.state, batch.received_at, self.sim.start_delay)
                    self.liveness.observe(hb, batch.received_at)
                    latest[hb.server_id] = hb
                self.positions[partition] = nxt
        if cycle.watch_started_at is not None:
            self.liveness.watch_started_at = cycle.watch_started_at
        return latest

    def step(self, term: Term, cycle: CycleMark) -> CycleResult | None:
        """One cycle: observed always; through ``decide`` from ``since`` on (else the log's
        events are the state's)."""
        simulate = cycle.now >= self.sim.since
        latest = self._observe(cycle, simulate and self.sim.workers == "obedient")
        seqs = range(self.real_seq + 1, cycle.seq + 1)
        real = tuple(self.log_by_seq[s] for s in seqs if s in self.log_by_seq)
        self.real_seq = cycle.seq
        view = self.liveness.view()
        if not simulate:
            self._follow_log(cycle.seq)
            return None
        self.simulating = True
        inputs = Inputs(
            heartbeats=list(latest.values()),
            commands=_commands(self.recorded, cycle.commands),
            observer_lag=cycle.observer_lag,
            check_balance=cycle.check_balance,
        )
        before = self.state.seq
        d = decide(
            self.state,
            view,
            inputs,
            now=cycle.now,
            new_id=lambda: f"sim-{next(self._ids)}",
            config=self.config,
            source=self.source,
        )
        self.state = d.state
        if self.sim.on_cycle is not None:
            self.sim.on_cycle(cycle)
        heard = self._last_heard((*real, *d.events))
        term_events, self.term_events = self.term_events, ()
        return CycleResult(cycle, real, d.events, heard, before, term_events)

    def _last_heard(self, events: Sequence[ControlEvent]) -> dict[str, datetime]:
        """When each failed incarnation was last heard: where its outage really began."""
        heard = {}
        for e in events:
            if isinstance(e, ev.InstanceFailed):
                seen = self.liveness.last_seen(e.server_id, e.incarnation)
                if seen is not None:
                    heard[e.id] = seen
        return heard


__all__ = [
    "CycleResult",
    "Recorded",
    "RecordMissingError",
    "Simulation",
    "Term",
    "Workers",
    "configured",
    "obedient",
    "run",
    "terms",
]
