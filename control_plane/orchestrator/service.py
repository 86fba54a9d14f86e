"""The orchestrator process: one active leader, any number of hot standbys.

Leadership: the consumer group of the single-partition commands topic picks the leader (the
member holding partition 0). The leader writes through a transactional producer with a
fixed ``transactional_id``, so a new leader's ``init_transactions`` fences the old one, and
opens its term with ``LeaderElected(epoch)`` after replaying the log to its end
(:mod:`control_plane.orchestrator.leadership`).

Each cycle is consume-transform-produce: heartbeats (:mod:`control_plane.orchestrator.heartbeats`)
+ commands -> ``decide`` -> ONE Kafka transaction with the control events, the changed desired
sets, the consumed command offsets and the cycle marks (:mod:`control_plane.orchestrator.marks`).
Standbys follow the control log with the shared :class:`projections.io.follow.LogFollower`
(from the latest snapshot on), so a takeover replays only the tail. All rules live in
:mod:`control_plane.decide`; this module only moves bytes. The process around it (signals,
retries while Kafka is away) is :mod:`control_plane.orchestrator.runner`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from aiokafka import TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import OffsetAndMetadata

from control_plane.decide import Decision, Inputs, all_desired, begin_term, decide
from control_plane.decide.liveness import Liveness
from control_plane.orchestrator.consistency_watch import ConsistencyWatch
from control_plane.orchestrator.enrollment import HeartbeatGate
from control_plane.orchestrator.heartbeats import HeartbeatPoller
from control_plane.orchestrator.leadership import ControlWriter, Membership, poll_commands
from control_plane.orchestrator.log_lines import AlertLines, log_written
from control_plane.orchestrator.marks import CycleMarker
from control_plane.orchestrator.metrics import OrchestratorMetrics, Seen
from control_plane.orchestrator.recorder import DecisionRecorder
from control_plane.orchestrator.settings import OrchestratorSettings
from control_plane.orchestrator.snapshotter import SnapshotPolicy, Snapshotter
from events.base import ControlEvent
from events.heartbeat import DesiredSet
from events.topics import Topics
from projections.errors import KafkaIOError
from projections.fold import apply
from projections.fold.state import ClusterState
from projections.io.dlq import DeadLetterWriter
from projections.io.follow import LogFollower, OnUndecodable, raise_undecodable, to_dead_letters
from projections.io.kafka import make_consumer
from projections.io.snapshot_store import SnapshotStore
from projections.io.topics import ensure_topics

log = logging.getLogger("streamplane.orchestrator")

#: control-log records per read while following or catching up
LOG_BATCH = 50_000
#: how long the broker may hold the standby's empty log fetch: the take-over's end-offset
#: query waits behind it on the same connection (aiokafka's 500 ms default costs a takeover
#: up to half a second; an idle standby fetching ten times a second costs nothing)
LOG_FETCH_WAIT_MS = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


class EnhancedStreamOrchestrator:
    """The seed's orchestrator as a Kafka process (see the module docstring)."""

    def __init__(self, settings: OrchestratorSettings, *, clock: Callable[[], datetime] = utc_now):
        self.settings = settings
        self.topics = Topics(settings.topic_prefix)
        self.node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.source = f"streamplane/orchestrator/{self.node_id}"
        self.transactional_id = settings.transactional_id or f"{self.topics.prefix}.orchestrator"
        self.group_id = f"{self.topics.prefix}.orchestrator"
        self.config = settings.decide_config()
        self.clock = clock
        self.state = ClusterState()
        self.active = False
        self.liveness = Liveness(
            watch_started_at=clock(), phi_window=settings.liveness_phi_window()
        )
        #: STREAMPLANE_RECORD_DECISIONS: each leader cycle's inputs and outputs (off: None)
        self._recorder = DecisionRecorder.open(
            settings.record_decisions, self.liveness, node=self.node_id
        )
        self.heartbeats = HeartbeatPoller(
            self.topics,
            interval=settings.cycle_interval,
            request_timeout=settings.request_timeout_s,
            observer_max_lag=self.config.observer_max_lag,
            clock=clock,
            gate=HeartbeatGate(
                open_enrollment=settings.open_enrollment,
                max_age=timedelta(seconds=settings.heartbeat_max_age),
            ),
        )
        self._stop = asyncio.Event()
        self._alert_lines = AlertLines()  # decide's alerts, without one line per cycle
        self._membership = Membership()
        self._writer = ControlWriter(
            settings.kafka_access,
            self.topics,
            transactional_id=self.transactional_id,
            group_id=self.group_id,
            request_timeout=settings.request_timeout_s,
        )
        self._last_balance_check = clock()
        self._cmd_tp = TopicPartition(self.topics.commands, 0)
        #: the control-log offset after the last event ``self.state`` covers (as leader)
        self._log_next = 0
        self._snapshotter: Snapshotter | None = None
        self._follower: LogFollower | None = None
        #: undecodable records go to the dead-letter topic once ``run`` has opened it
        self._dead_letter: OnUndecodable = raise_undecodable
        horizon = timedelta(seconds=settings.metrics_failover_horizon)
        #: the process's registry (served by the runner when ``metrics_address`` is set)
        self.metrics = OrchestratorMetrics(self._seen, failover_horizon=horizon)
        self.consistency = ConsistencyWatch.of(settings, self.topics, self.metrics.registry, clock)
        #: STREAMPLANE_RECORD_CYCLES: each leader cycle's mark on <prefix>.cycles (off: None)
        self._marker = CycleMarker.open(settings, self.node_id, self.config, self.metrics)

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()  # until stop() is called

    @property
    def follower(self) -> LogFollower:
        """The control log as this process follows it (exists while :meth:`run` runs)."""
        assert self._follower is not None, "the log follower exists only while running"
        return self._follower

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop`; leaves the group cleanly so a standby takes over fast."""
        s = self.settings
        await ensure_topics(s.kafka_access, self.topics)
        self._cmd = make_consumer(
            s.kafka_access,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            # keeps the partition with its holder when a standby joins (no needless terms)
            partition_assignment_strategy=(self._membership.assignor,),
        )
        self._membership.consumer = self._cmd
        async with (
            DeadLetterWriter(s.kafka_access, self.topics.dlq) as dlq,
            SnapshotStore(s.kafka_access, self.topics) as store,
        ):
            self._dead_letter = self.metrics.counting(
                to_dead_letters(dlq, clock=self.clock, logger=log), self.topics
            )
            self._follower = LogFollower(
                s.kafka_access,
                self.topics,
                on_undecodable=self._dead_letter,
                kafka_timeout=s.request_timeout_s,
                max_records=LOG_BATCH,
                fetch_max_wait_ms=LOG_FETCH_WAIT_MS,
                what="orchestrator log follower",
            )
            self._snapshotter = Snapshotter(
                store,
                SnapshotPolicy(s.snapshot_every, timedelta(seconds=s.snapshot_interval)),
                taken_by=self.node_id,
                now=self.clock(),
                load_timeout=s.snapshot_load_timeout,
            )
            try:
                await self._start_consumers()
                log.info("orchestrator %s started (standby until elected)", self.node_id)
                while not self._stop.is_set():
                    await self._cycle()
            finally:
                await self._shutdown()

    async def _start_consumers(self) -> None:
        async with asyncio.timeout(self.settings.request_timeout_s * 3):
            await self.heartbeats.start(self.settings.kafka_access)
            await self.follower.start()
            await self._cmd.start()
            self._cmd.subscribe([self.topics.commands], listener=self._membership)
        await self._load_snapshot()

    async def _shutdown(self) -> None:
        await self.consistency.aclose()
        if self._snapshotter is not None:
            await self._snapshotter.aclose()
        await self._writer.close()
        try:  # first: leaving the group promptly is what lets a standby take over fast
            async with asyncio.timeout(self.settings.request_timeout_s):
                await self._cmd.stop()
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            log.warning("stopping the commands consumer failed: %s", exc)
        await self.heartbeats.stop()
        if self._follower is not None:
            await self._follower.stop()
        log.info("orchestrator %s stopped", self.node_id)

    # --- one cycle --------------------------------------------------------------------------

    async def _cycle(self) -> None:
        watch = self.liveness.watch_started_at
        heartbeats = await self.heartbeats.poll(self.liveness, self._dead_letter, self.state)
        leader = self._cmd_tp in self._membership.owned
        if not self.active:
            await self._standby_cycle(leader)
            return
        if not leader:
            await self._step_down("commands partition revoked")
            return
        began = time.perf_counter()
        commands, offsets, span = await poll_commands(self._cmd, self._dead_letter)
        now = self.clock()
        check = self._balance_check_due(now)
        inputs = Inputs(
            heartbeats=heartbeats,
            commands=commands,
            observer_lag=now - self.heartbeats.last_poll,
            check_balance=check,
        )
        d = self._decide(inputs, now)
        moved = self.liveness.watch_started_at if self.liveness.watch_started_at != watch else None
        busy = bool(d.events or d.desired or offsets)
        marks = None
        if self._marker is not None:
            marks = self._marker.after_decide(
                inputs, self.heartbeats.batches, seq=d.state.seq, commands=span, watch=moved,
                now=now, busy=busy,
            )  # fmt: skip
        if busy or marks is not None:
            if not await self._commit(d.events, d.desired, offsets, marks):
                return
        before, self.state = self.state, d.state
        self.metrics.committed(
            d.events,
            before=before,
            after=self.state,
            liveness=self.liveness,
            commands=commands,
            committed_at=self.clock(),
        )
        log_written(d.events)
        if self._snapshotter is not None:  # after the commit, never inside it
            self._snapshotter.after_commit(self.state, self._log_next, now)
        self.consistency.after_commit(self.state, self._log_next, self.liveness, now)
        self.metrics.cycle.observe(time.perf_counter() - began)

    def _decide(self, inputs: Inputs, now: datetime) -> Decision:
        """``decide`` on the current state (recorded when recording is on)."""
        rec = self._recorder
        began = time.perf_counter()
        d = decide(
            self.state,
            self.liveness.view(),  # read-only; repaired here if the clock stepped back
            inputs,
            now=now,
            new_id=self.new_id if rec is None else rec.tap_ids(self.new_id),
            config=self.config,
            source=self.source,
        )
        self.metrics.decide.observe(time.perf_counter() - began)
        if rec is not None:
            rec.cycle(inputs, d, now=now)
        self._alert_lines.log(d.alerts, now)
        for dropped in d.dropped:
            log.error("decision refused by the fold (bug): %s", dropped)
        self.metrics.decision_outcome(alerts=len(d.alerts), refused=len(d.dropped))
        return d

    def _seen(self) -> Seen:
        """What the state gauges read, on the metrics server's thread: reads only."""
        lag = (self.clock() - self.heartbeats.last_poll).total_seconds()
        counts = (t.written, t.failed) if (t := self._snapshotter) is not None else (0, 0)
        return Seen(self.active, lag, self.heartbeats.received, *counts)

    async def _standby_cycle(self, leader: bool) -> None:
        """Follow the log; take over once the group has handed us the commands partition."""
        await self._follow_log()
        await self._cmd.getmany(timeout_ms=0)  # keeps group membership alive
        if leader and self._cmd_tp in self._cmd.assignment():
            await self._take_over()

    def _balance_check_due(self, now: datetime) -> bool:
        """The timer behind ``Inputs.check_balance``: looking for imbalance costs O(streams),
        so ``decide`` does it every ``balance_check_interval``, not every cycle."""
        elapsed = (now - self._last_balance_check).total_seconds()
        due = elapsed >= self.settings.balance_check_interval
        if due:
            self._last_balance_check = now
        return due

    async def _follow_log(self) -> None:
        """As a standby: fold what the leader committed since the last cycle."""
        before = self.state
        events = await self.follower.poll(timeout_ms=0)
        self.state = self.follower.state
        self.metrics.state_gauges.moved(before, self.state, events)

    # --- leadership -------------------------------------------------------------------------

    async def _take_over(self) -> None:
        """Fence the old leader, replay the log to its end, open a new term."""
        log.info("%s holds the commands partition: fencing and taking over", self.node_id)
        try:
            async with asyncio.timeout(self.settings.request_timeout_s * 3):
                await self._writer.open()  # init_transactions: fences any older producer
                await self.follower.catch_up()
                self.state, self._log_next = self.follower.state, self.follower.position
                committed = await self._cmd.committed(self._cmd_tp)
                if committed is None:
                    await self._cmd.seek_to_beginning(self._cmd_tp)
                else:
                    self._cmd.seek(self._cmd_tp, committed)
                now = self.clock()
                term = begin_term(
                    self.state,
                    leader_id=self.node_id,
                    now=now,
                    new_id=self.new_id,
                    source=self.source,
                )
                state = apply(self.state, term)
                desired = all_desired(state, source=self.source, now=now, new_id=self.new_id)
                marks = None
                if self._marker is not None:
                    marks = await self._marker.open_term(term, self.liveness, self.heartbeats)
            if not await self._commit((term,), desired, {}, marks):
                return
        except (TimeoutError, kafka_errors.KafkaError, KafkaIOError) as exc:
            log.warning("take-over failed: %s", exc)
            await self._step_down(f"take-over failed: {exc}")
            return
        self.state = state
        self.active = True
        self.metrics.terms.inc()
        if self._recorder is not None:
            self._recorder.start(state=state, term=term, config=self.config, source=self.source)
        log.info(
            "%s is the leader (epoch %d, seq %d)",
            self.node_id,
            state.epoch,
            state.seq,
            extra={"seq": state.seq, "epoch": state.epoch, "event_id": term.id},
        )

    async def _step_down(self, why: str) -> None:
        """Forget everything not read back from the log and follow it again as a standby."""
        log.warning("%s steps down: %s", self.node_id, why)
        self.active = False
        self.metrics.stepped_down()
        if self._recorder is not None:
            self._recorder.stop(why)
        await self.consistency.aclose()
        if self._marker is not None:
            self._marker.drop()
        await self._writer.close()
        await self._load_snapshot()

    async def _load_snapshot(self) -> None:
        """Start from the latest valid snapshot and follow the log from its ``log_offset``
        (from the beginning when there is none or it is unusable: logged, never fatal)."""
        assert self._snapshotter is not None
        follower = self.follower
        point = await self._snapshotter.load(follower.consumer, follower.tp, now=self.clock())
        await follower.rewind(point.state, point.offset)
        self.state = point.state

    async def _commit(
        self,
        events: Sequence[ControlEvent],
        desired: Sequence[DesiredSet],
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        marks: bytes | None = None,
    ) -> bool:
        """Events, desired sets, command offsets and cycle marks in ONE transaction; False
        if we lost it (then we have stepped down)."""
        began = time.perf_counter()
        try:
            end = await self._writer.commit(events, desired, offsets, marks)
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            await self._step_down(f"transaction failed: {type(exc).__name__}: {exc}")
            return False
        self.metrics.transaction.observe(time.perf_counter() - began)
        if end is not None:  # where the state now ends in the log (for snapshots)
            self._log_next = end
        return True
