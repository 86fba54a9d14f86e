"""A small deterministic simulator around the pure ``decide``: no event loop, no Kafka.

A fake clock, a counter for ids, and simulated workers that do what real ones do: apply the
desired set published in the previous cycle (start what is desired, stop what is not, stop
everything when fenced), report their streams in a heartbeat each cycle, and optionally take
a few cycles to start a stream, fail to start some streams, crash, go silent (alive but
unheard), or leave gracefully. ``Sim.cycle()`` runs one orchestrator cycle exactly as the
shell does: observe the heartbeats, hand ``decide`` the liveness's read-only view, keep the
events and the desired sets. ``Sim.record(path)`` records the cycles as the orchestrator's
``STREAMPLANE_RECORD_DECISIONS`` does (docs/orchestrator.md, "Decision goldens").

``invariant_violations`` lists what must never be seen at the end of a cycle.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from control_plane.decide import Decision, Inputs, all_desired, begin_term, decide
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness
from control_plane.orchestrator.recorder import DecisionRecorder
from events import commands as cmd
from events.base import Command, ControlEvent
from events.heartbeat import DesiredSet, Heartbeat, StreamReport, StreamRunState
from projections.fold import apply, fold
from projections.fold.state import GONE_STATUSES, ClusterState

START = datetime(2026, 1, 1, tzinfo=UTC)
SOURCE = "streamplane/orchestrator"

#: thresholds small enough for a few dozen one-second cycles to exercise everything
SIM_CONFIG = DecideConfig(
    suspect_after=timedelta(seconds=2),
    fail_after=timedelta(seconds=4),
    mass_failure_share=0.5,
    mass_failure_min=3,
    observer_max_lag=timedelta(seconds=3),
    max_in_flight=4,
    max_in_flight_per_instance=2,
    migration_timeout=timedelta(seconds=8),
    poison_threshold=3,
    quarantine_after=3,
    flap_window=timedelta(minutes=5),
    quarantine_base=timedelta(seconds=3),
    quarantine_max=timedelta(seconds=20),
    perf_sample_interval=timedelta(seconds=30),
    auto_rebalance=False,
    rebalance_cooldown=timedelta(seconds=5),
)


@dataclass
class Run:
    state: StreamRunState
    ready_at: int = 0
    error: str | None = None


@dataclass
class SimWorker:
    """One simulated worker process (``incarnation`` changes at every restart)."""

    server_id: str
    incarnation: str
    max_streams: int
    #: cycles a start takes before the stream reports running
    start_delay: int = 0
    #: streams whose start fails on this worker (reported ``failed`` while desired)
    bad: set[str] = field(default_factory=set)
    alive: bool = True
    #: alive, but its heartbeats never arrive (a partition, a paused process)
    silent: bool = False
    leaving: bool = False
    fenced: bool = False
    #: what a real agent does when told it is fenced: stop all, register as a new incarnation
    reregister_when_fenced: bool = True
    running: dict[str, Run] = field(default_factory=dict)
    last_desired: DesiredSet | None = None

    def apply_desired(self, ds: DesiredSet, cycle: int) -> None:
        if ds.incarnation != self.incarnation or not self.alive:
            return
        self.last_desired = ds
        if ds.fenced:
            self.running.clear()
            self.fenced = True
            return
        want = set(ds.streams)
        for sid in [s for s in self.running if s not in want]:
            del self.running[sid]
        for sid in sorted(want - set(self.running)):
            if sid in self.bad:
                self.running[sid] = Run(StreamRunState.FAILED, error=f"{sid} cannot start here")
            else:
                self.running[sid] = Run(StreamRunState.STARTING, ready_at=cycle + self.start_delay)

    def tick(self, cycle: int) -> None:
        for run in self.running.values():
            if run.state is StreamRunState.STARTING and run.ready_at <= cycle:
                run.state = StreamRunState.RUNNING

    def heartbeat(self, *, id_: str, now: datetime) -> Heartbeat:
        reports = tuple(
            StreamReport(stream_id=sid, state=r.state, error=r.error)
            for sid, r in sorted(self.running.items())
        )
        return Heartbeat(
            id=id_,
            source=f"worker/{self.server_id}",
            time=now,
            server_id=self.server_id,
            incarnation=self.incarnation,
            ip=IPv4Address("127.0.0.1"),
            port=9000,
            max_streams=self.max_streams,
            streams=reports,
            leaving=self.leaving,
        )


class Sim:
    """A deterministic cluster: orchestrator state, liveness, workers, a clock, ids."""

    def __init__(
        self,
        config: DecideConfig = SIM_CONFIG,
        *,
        step: timedelta = timedelta(seconds=1),
        start: datetime = START,
        hot_leader: bool = True,
    ) -> None:
        self.config = config
        self.step = step
        self.now = start
        self.cycle_no = 0
        self._ids = itertools.count(1)
        self._incarnations = itertools.count(1)
        self.workers: dict[str, SimWorker] = {}
        self.log: list[ControlEvent] = []
        self.decisions: list[Decision] = []
        self.published: dict[str, DesiredSet] = {}
        self.pending: list[Command] = []
        self.observer_lag = timedelta(0)
        self.state = ClusterState()
        # a hot standby has listened for long; a cold one starts listening now
        watch = start - timedelta(hours=1) if hot_leader else start
        self.liveness = Liveness(watch_started_at=watch)
        self.recorder: DecisionRecorder | None = None
        self._term()

    # --- ids and messages --------------------------------------------------------------

    def new_id(self) -> str:
        return f"id-{next(self._ids)}"

    def _term(self) -> None:
        term = begin_term(
            self.state, leader_id="leader", now=self.now, new_id=self.new_id, source=SOURCE
        )
        self.state = apply(self.state, term)
        self.log.append(term)
        for ds in all_desired(self.state, source=SOURCE, now=self.now, new_id=self.new_id):
            self.published[ds.server_id] = ds

    def new_leader(self, *, hot: bool) -> None:
        """A take-over: a new term; a cold leader forgets what it heard and starts listening."""
        if not hot:
            self.liveness = Liveness(watch_started_at=self.now)
        self._term()

    def record(self, path: Path) -> DecisionRecorder:
        """Record every following cycle to ``path``, from the current state and liveness."""
        self.recorder = DecisionRecorder(path, self.liveness)
        term = self.log[0] if len(self.log) == 1 else None  # the log so far, when that short
        self.recorder.start(state=self.state, config=self.config, source=SOURCE, term=term)
        return self.recorder

    def command(self, cls: type[Command], **fields: Any) -> Command:
        """Queue an operator command for the next cycle (``command_id`` may be given)."""
        fields.setdefault("command_id", self.new_id())
        c = cls(id=self.new_id(), source="operator", time=self.now, **fields)
        self.pending.append(c)
        return c

    def resend(self, c: Command) -> None:
        self.pending.append(c)

    # --- workers -----------------------------------------------------------------------

    def _incarnation(self, server_id: str) -> str:
        return f"{server_id}-i{next(self._incarnations)}"

    def add_worker(self, server_id: str, capacity: int = 4, **kw: Any) -> SimWorker:
        w = SimWorker(server_id, self._incarnation(server_id), capacity, **kw)
        self.workers[server_id] = w
        return w

    def crash(self, server_id: str) -> None:
        w = self.workers[server_id]
        w.alive = False
        w.running.clear()

    def restart(self, server_id: str) -> SimWorker:
        """The process starts again: a fresh incarnation, nothing running."""
        w = self.workers[server_id]
        w.incarnation = self._incarnation(server_id)
        w.alive, w.leaving, w.fenced = True, False, False
        w.running.clear()
        w.last_desired = None
        return w

    def leave(self, server_id: str) -> None:
        """Graceful shutdown: the next heartbeat says ``leaving``, then the process exits."""
        self.workers[server_id].leaving = True

    # --- one cycle ---------------------------------------------------------------------

    def cycle(self, *, check_balance: bool = False) -> Decision:
        self.now += self.step
        self.cycle_no += 1
        heartbeats: list[Heartbeat] = []
        for sid in sorted(self.workers):
            w = self.workers[sid]
            if not w.alive:
                continue
            ds = self.published.get(sid)
            if ds is not None:
                w.apply_desired(ds, self.cycle_no)
            if w.fenced and w.reregister_when_fenced:
                self.restart(sid)
            w.tick(self.cycle_no)
            if w.silent:
                continue
            hb = w.heartbeat(id_=self.new_id(), now=self.now)
            self.liveness.observe(hb, self.now)
            heartbeats.append(hb)
            if w.leaving:
                w.alive = False
                w.running.clear()
        commands, self.pending = self.pending, []
        inputs = Inputs(heartbeats, commands, self.observer_lag, check_balance)
        rec = self.recorder
        d = decide(
            self.state,
            self.liveness.view(),
            inputs,
            now=self.now,
            new_id=self.new_id if rec is None else rec.tap_ids(self.new_id),
            config=self.config,
            source=SOURCE,
        )
        if rec is not None:
            rec.cycle(inputs, d, now=self.now)
        self.state = d.state
        self.log.extend(d.events)
        self.decisions.append(d)
        for ds in d.desired:
            self.published[ds.server_id] = ds
        return d

    def run(self, n: int, **kw: Any) -> list[Decision]:
        return [self.cycle(**kw) for _ in range(n)]

    # --- conveniences ------------------------------------------------------------------

    def register(self, stream_id: str, **fields: Any) -> Command:
        return self.command(cmd.RegisterStream, stream_id=stream_id, **fields)

    def owner(self, stream_id: str) -> str | None:
        return self.state.streams[stream_id].server_id

    def status(self, stream_id: str) -> str:
        return str(self.state.streams[stream_id].status)

    def events_of(self, type_: type[ControlEvent]) -> list[Any]:
        return [e for e in self.log if isinstance(e, type_)]


def events_since(decisions: Iterable[Decision]) -> list[ControlEvent]:
    return [e for d in decisions for e in d.events]


def invariant_violations(sim: Sim) -> list[str]:
    """What must never be true at the end of a cycle (empty list: all good)."""
    s, out = sim.state, []
    for d in sim.decisions[-1:]:
        out += [f"dropped: {x}" for x in d.dropped]
    if s.finding_count:
        out.append(f"findings: {s.findings}")
    holders: dict[str, list[str]] = {}
    for server_id, held in s.held.items():
        for stream_id in held:
            holders.setdefault(stream_id, []).append(server_id)
    for inst in s.instances.values():
        mine = sorted(s.held.get(inst.server_id) or ())
        weight = sum(s.streams[x].weight for x in mine)
        if inst.status in GONE_STATUSES and mine:
            out.append(f"{inst.server_id} is {inst.status} but holds {mine}")
        if weight != inst.load:
            out.append(f"{inst.server_id}: load {inst.load} but holds weight {weight}")
        if inst.load > inst.max_streams:
            out.append(f"{inst.server_id}: load {inst.load} > capacity {inst.max_streams}")
    for st in s.streams.values():
        expect = set()
        if st.server_id is not None:
            expect.add(st.server_id)
            owner = s.instances.get(st.server_id)
            if owner is None or owner.status in GONE_STATUSES:
                out.append(f"{st.stream_id} owned by gone {st.server_id}")
            elif owner.incarnation != st.incarnation:
                out.append(f"{st.stream_id} owned by past incarnation {st.incarnation}")
        m = st.migration_state
        if m is not None:
            expect.add(m.to_server)
            if st.server_id is None:
                out.append(f"{st.stream_id} migrating without an owner")
            target = s.instances.get(m.to_server)
            # the target may fall silent (suspected) mid-migration, but never stay gone
            if target is None or target.status in GONE_STATUSES:
                out.append(f"{st.stream_id} migrating to gone {m.to_server}")
            elif target.incarnation != m.to_incarnation:
                out.append(f"{st.stream_id} migrating to past incarnation {m.to_incarnation}")
        if set(holders.get(st.stream_id, ())) != expect:
            out.append(f"{st.stream_id} held by {holders.get(st.stream_id)}, expected {expect}")
    return out


def replay_matches(sim: Sim) -> bool:
    """``fold(every event written)`` is the orchestrator's state, without a finding."""
    replayed = fold(sim.log)
    return replayed == sim.state and replayed.finding_count == 0


def types_of(events: Iterable[ControlEvent]) -> list[str]:
    return [e.type for e in events]  # type: ignore[attr-defined]


def cluster(*caps: int, streams: int = 0, hot: bool = True, cfg: DecideConfig = SIM_CONFIG) -> Sim:
    """Workers ``w0``.. with these capacities, registered, and ``streams`` streams placed."""
    sim = Sim(cfg, hot_leader=hot)
    for i, cap in enumerate(caps):
        sim.add_worker(f"w{i}", cap)
    sim.cycle()
    for i in range(streams):
        sim.register(f"s{i}")
    sim.run(2)
    return sim


def until_failed(sim: Any, cycles: int = 5) -> tuple[dict[str, int], Any]:
    """Run up to ``cycles`` cycles until one fails an instance: the first cycle (1-based) each
    event type appeared in, and the decision that failed it."""
    seen: dict[str, int] = {}
    for i in range(1, cycles + 1):
        d = sim.cycle()
        for t in types_of(d.events):
            seen.setdefault(t, i)
        if "InstanceFailed" in types_of(d.events):
            return seen, d
    raise AssertionError(f"no InstanceFailed within {cycles} cycles: {seen}")
