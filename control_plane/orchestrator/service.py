"""The orchestrator process: one active leader, any number of hot standbys.

Leadership: the consumer group of the single-partition commands topic picks the leader (the
member holding partition 0). The leader writes through a transactional producer with a
fixed ``transactional_id``, so a new leader's ``init_transactions`` fences the old one, and
opens its term with ``LeaderElected(epoch)`` after replaying the log to its end.

Each cycle is consume-transform-produce: heartbeats + commands -> ``decide`` -> ONE Kafka
transaction with the control events, the changed desired sets and the consumed command
offsets. Standbys follow the control log and the heartbeats, so a takeover replays only the
tail. All rules live in :mod:`control_plane.decide`; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor
from aiokafka.structs import OffsetAndMetadata

from control_plane.decide import Inputs, all_desired, begin_term, decide
from control_plane.decide.liveness import Liveness
from control_plane.orchestrator.settings import OrchestratorSettings
from control_plane.orchestrator.snapshotter import SnapshotPolicy, Snapshotter
from events import Command, EventError, decode_command, decode_event, decode_heartbeat, encode
from events.base import ControlEvent
from events.heartbeat import Heartbeat
from events.topics import HEARTBEATS, Topics
from projections.errors import KafkaIOError
from projections.fold import apply
from projections.fold.state import ClusterState
from projections.io.dlq import DeadLetterWriter, make_dead_letter
from projections.io.kafka import ensure_topics, make_consumer, make_producer
from projections.io.snapshot_store import SnapshotStore

log = logging.getLogger("streamplane.orchestrator")

#: heartbeats per read while draining: small enough to check the time budget often
HB_BATCH = 2_000


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Which commands partitions this member holds, as of the last completed rebalance.

    A revocation alone changes nothing: with the eager protocol every rebalance (a standby
    joining, say) revokes everything first, and the sticky assignor hands the partition back
    to its holder. Stepping down on each revocation would start a new term for nothing.
    Meanwhile the leader keeps writing; should another member really take over, its
    ``init_transactions`` fences us and our next commit fails, which makes us step down.
    """

    def __init__(self) -> None:
        self.owned: frozenset[TopicPartition] = frozenset()

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self.owned = frozenset(assigned)


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
        self.heartbeats_paused = False  # a fault-injection switch (SIGUSR1), see docs
        self._stop = asyncio.Event()
        self._membership = _Membership()
        self._producer: AIOKafkaProducer | None = None
        self._last_hb_poll = clock()
        #: when the heartbeat topic was last read to its end (see _poll_heartbeats)
        self._hb_caught_up_at = clock()
        self._observer_blind = False
        self._last_balance_check = clock()
        self._log_tp = TopicPartition(self.topics.events, 0)
        self._cmd_tp = TopicPartition(self.topics.commands, 0)
        #: the control-log offset after the last event ``self.state`` covers (as leader)
        self._log_next = 0
        self._snapshotter: Snapshotter | None = None

    def new_id(self) -> str:
        return uuid.uuid4().hex

    def stop(self) -> None:
        self._stop.set()

    # --- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`stop`; leaves the group cleanly so a standby takes over fast."""
        s = self.settings
        await ensure_topics(s.kafka_bootstrap, self.topics)
        self._hb = make_consumer(s.kafka_bootstrap, auto_offset_reset="latest")
        self._log = make_consumer(s.kafka_bootstrap, auto_offset_reset="earliest")
        self._cmd = make_consumer(
            s.kafka_bootstrap,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            # keeps the partition with its holder when a standby joins (no needless terms)
            partition_assignment_strategy=(StickyPartitionAssignor,),
        )
        async with (
            DeadLetterWriter(s.kafka_bootstrap, self.topics.dlq) as dlq,
            SnapshotStore(s.kafka_bootstrap, self.topics) as store,
        ):
            self._dlq = dlq
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
            await self._hb.start()
            # ensure_topics checked the partition count, so the spec is the truth
            hb_tps = [
                TopicPartition(self.topics.heartbeats, p) for p in range(HEARTBEATS.partitions)
            ]
            self._hb.assign(hb_tps)
            await self._hb.seek_to_end(*hb_tps)
            await self._log.start()
            self._log.assign([self._log_tp])
            await self._log.seek_to_beginning(self._log_tp)
            await self._cmd.start()
            self._cmd.subscribe([self.topics.commands], listener=self._membership)
        await self._load_snapshot()

    async def _shutdown(self) -> None:
        if self._snapshotter is not None:
            await self._snapshotter.aclose()
        await self._drop_producer()
        for consumer in (self._cmd, self._hb, self._log):
            try:
                async with asyncio.timeout(self.settings.request_timeout_s):
                    await consumer.stop()
            except (TimeoutError, kafka_errors.KafkaError) as exc:
                log.warning("stopping a consumer failed: %s", exc)
        log.info("orchestrator %s stopped", self.node_id)

    # --- one cycle --------------------------------------------------------------------------

    async def _cycle(self) -> None:
        heartbeats = await self._poll_heartbeats()
        leader = self._cmd_tp in self._membership.owned
        if not self.active:
            await self._follow_log()
            await self._cmd.getmany(timeout_ms=0)  # keeps group membership alive
            if leader and self._cmd_tp in self._cmd.assignment():
                await self._take_over()
            return
        if not leader:
            await self._step_down("commands partition revoked")
            return
        commands, offsets = await self._poll_commands()
        now = self.clock()
        check = now - self._last_balance_check >= timedelta(
            seconds=self.settings.balance_check_interval
        )
        if check:
            self._last_balance_check = now
        inputs = Inputs(
            heartbeats=heartbeats,
            commands=commands,
            observer_lag=now - self._last_hb_poll,
            check_balance=check,
        )
        d = decide(
            self.state,
            self.liveness,
            inputs,
            now=now,
            new_id=self.new_id,
            config=self.config,
            source=self.source,
        )
        for alert in d.alerts:
            log.warning("alert: %s", alert)
        for dropped in d.dropped:
            log.error("decision refused by the fold (bug): %s", dropped)
        if d.events or d.desired or offsets:
            if not await self._commit(d.events, d.desired, offsets):
                return
        self.state = d.state
        if d.events:
            # one line per cycle: per-event lines cost a fifth of a busy cycle (bench/heartbeats)
            log.info("seq %d..%d: %s", d.events[0].seq, d.events[-1].seq, _summary(d.events))
            if log.isEnabledFor(logging.DEBUG):
                for e in d.events:
                    log.debug("seq %d %s %s", e.seq, e.type, e.subject or "")  # type: ignore[attr-defined]
        if self._snapshotter is not None:  # after the commit, never inside it
            self._snapshotter.after_commit(self.state, self._log_next, now)

    async def _poll_heartbeats(self) -> list[Heartbeat]:
        """Drain the heartbeat topic, for at most ``cycle_interval`` (the rest waits a cycle).

        Draining, rather than one bounded read, keeps a backlog (after a long cycle) from
        leaving partitions unread, whose instances would look silent. While a backlog is
        left, the observer counts as lagging since it was last caught up, so a slow
        orchestrator enters the mass-failure guard instead of suspecting live instances."""
        interval = self.settings.cycle_interval
        if self.heartbeats_paused:
            await asyncio.sleep(interval)
            return []
        deadline = time.monotonic() + interval
        timeout_ms = int(interval * 1000)
        latest: dict[str, Heartbeat] = {}
        while True:
            batches = await self._hb.getmany(timeout_ms=timeout_ms, max_records=HB_BATCH)
            now = self.clock()
            for tp, records in batches.items():
                for r in records:
                    try:
                        hb = decode_heartbeat(r.value)
                    except EventError as exc:
                        await self._dead_letter(tp, r, exc)
                        continue
                    self.liveness.observe(hb, now)
                    latest[hb.server_id] = hb
            caught_up = await self._heartbeats_caught_up()
            timeout_ms = int((deadline - time.monotonic()) * 1000)
            if caught_up or timeout_ms <= 0:
                break
        if caught_up:
            self._hb_caught_up_at = now
        self._last_hb_poll = min(self._heartbeats_fetched_at(now), self._hb_caught_up_at)
        self._rebaseline_after_blindness(now)
        return list(latest.values())

    async def _heartbeats_caught_up(self) -> bool:
        """Whether every heartbeat partition is read up to its end as of its last fetch."""
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                for tp in self._hb.assignment():
                    end = self._hb.last_stable_offset(tp)  # read_committed reads up to it
                    if end is not None and await self._hb.position(tp) < end:
                        return False
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            log.warning("heartbeat positions unknown: %s", exc)
            return False
        return True

    def _heartbeats_fetched_at(self, now: datetime) -> datetime:
        """When every heartbeat partition last got a fetch answer (the oldest of them).

        ``getmany`` returns nothing, without an error, while Kafka is away: only the fetch
        times show that this observer went blind rather than the workers silent."""
        stamps = [self._hb.last_poll_timestamp(tp) for tp in self._hb.assignment()]
        if not stamps or None in stamps:
            return now  # nothing fetched yet: the start-up watch period covers us
        return now - timedelta(milliseconds=max(0.0, time.time() * 1000 - min(stamps)))

    def _rebaseline_after_blindness(self, now: datetime) -> None:
        """After a blind spot, judge no one silent before watching for a whole fail_after:
        workers reconnecting after a Kafka outage must not be failed for Kafka's silence."""
        blind = now - self._last_hb_poll > self.config.observer_max_lag
        if self._observer_blind and not blind:
            self.liveness.watch_started_at = now
            log.warning("heartbeats flow again: judging no one silent for fail_after")
        self._observer_blind = blind

    async def _poll_commands(self) -> tuple[list[Command], dict[TopicPartition, OffsetAndMetadata]]:
        batches = await self._cmd.getmany(timeout_ms=0, max_records=500)
        commands: list[Command] = []
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, records in batches.items():
            for r in records:
                try:
                    commands.append(decode_command(r.value))
                except EventError as exc:
                    await self._dead_letter(tp, r, exc)
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "")
        return commands, offsets

    async def _follow_log(self, timeout_ms: int = 0) -> int:
        """Fold what the leader committed since last time; returns how many records."""
        batches = await self._log.getmany(self._log_tp, timeout_ms=timeout_ms, max_records=50_000)
        n = 0
        for r in batches.get(self._log_tp, []):
            n += 1
            try:
                self.state = apply(self.state, decode_event(r.value))
            except EventError as exc:
                await self._dead_letter(self._log_tp, r, exc)
        return n

    async def _dead_letter(self, tp: TopicPartition, r: object, exc: EventError) -> None:
        letter = make_dead_letter(
            topic=tp.topic,
            partition=tp.partition,
            offset=r.offset,  # type: ignore[attr-defined]
            key=r.key,  # type: ignore[attr-defined]
            value=r.value,  # type: ignore[attr-defined]
            error=exc,
            now=self.clock(),
            timestamp_ms=r.timestamp,  # type: ignore[attr-defined]
        )
        log.warning(
            "dead-lettered %s[%d]@%d: %s", tp.topic, tp.partition, letter.origin_offset, exc
        )
        await self._dlq.write(letter)

    # --- leadership -------------------------------------------------------------------------

    async def _take_over(self) -> None:
        """Fence the old leader, replay the log to its end, open a new term."""
        log.info("%s holds the commands partition: fencing and taking over", self.node_id)
        timeout = self.settings.request_timeout_s
        producer = make_producer(
            self.settings.kafka_bootstrap, transactional_id=self.transactional_id, linger_ms=0
        )
        try:
            async with asyncio.timeout(timeout * 3):
                await producer.start()  # init_transactions: fences any older producer
                self._producer = producer
                await self._catch_up()
                self._log_next = await self._log.position(self._log_tp)
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
            if not await self._commit((term,), desired, {}):
                return
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            log.warning("take-over failed: %s", exc)
            await self._step_down(f"take-over failed: {exc}")
            return
        self.state = state
        self.active = True
        log.info("%s is the leader (epoch %d, seq %d)", self.node_id, state.epoch, state.seq)

    async def _catch_up(self) -> None:
        end = (await self._log.end_offsets([self._log_tp]))[self._log_tp]
        while await self._log.position(self._log_tp) < end:
            await self._follow_log(timeout_ms=200)

    async def _step_down(self, why: str) -> None:
        """Forget everything not read back from the log and follow it again as a standby."""
        log.warning("%s steps down: %s", self.node_id, why)
        self.active = False
        await self._drop_producer()
        await self._load_snapshot()

    async def _load_snapshot(self) -> None:
        """Start from the latest valid snapshot and follow the log from its ``log_offset``
        (from the beginning when there is none or it is unusable: logged, never fatal)."""
        assert self._snapshotter is not None
        point = await self._snapshotter.load(self._log, self._log_tp, now=self.clock())
        self.state = point.state
        if point.offset is None:
            await self._log.seek_to_beginning(self._log_tp)
        else:
            self._log.seek(self._log_tp, point.offset)

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                await producer.stop()
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            log.warning("stopping the producer failed: %s", exc)

    async def _commit(self, events: tuple, desired: tuple, offsets: dict) -> bool:  # type: ignore[type-arg]
        """Events, desired sets and command offsets in ONE transaction; False if we lost it."""
        producer = self._producer
        assert producer is not None
        try:
            async with asyncio.timeout(self.settings.request_timeout_s):
                last = None
                async with producer.transaction():
                    for e in events:
                        last = await producer.send(self.topics.events, encode(e), partition=0)
                    for d in desired:
                        await producer.send(
                            self.topics.desired, encode(d), key=d.server_id.encode()
                        )
                    if offsets:
                        await producer.send_offsets_to_transaction(offsets, self.group_id)
                if last is not None:  # where the state now ends in the log (for snapshots)
                    self._log_next = (await last).offset + 1
            return True
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            await self._step_down(f"transaction failed: {type(exc).__name__}: {exc}")
            return False


def _summary(events: tuple[ControlEvent, ...]) -> str:
    """``StreamAssigned x3 s1,s2,s3; InstanceFailed w2``: what a cycle wrote, briefly."""
    groups: dict[str, list[str]] = {}
    for e in events:
        groups.setdefault(e.type, []).append(e.subject or "")  # type: ignore[attr-defined]
    parts = []
    for type_, subjects in groups.items():
        shown = ",".join(s for s in subjects[:5] if s)
        more = "..." if len(subjects) > 5 else ""
        count = f" x{len(subjects)}" if len(subjects) > 1 else ""
        parts.append(f"{type_}{count} {shown}{more}".rstrip())
    return "; ".join(parts)


async def run_orchestrator(settings: OrchestratorSettings) -> None:
    """Run one orchestrator until SIGTERM/SIGINT (SIGUSR1 toggles heartbeat consumption)."""
    orchestrator = EnhancedStreamOrchestrator(settings)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, orchestrator.stop)
    loop.add_signal_handler(signal.SIGINT, orchestrator.stop)

    def toggle() -> None:
        orchestrator.heartbeats_paused = not orchestrator.heartbeats_paused
        log.warning(
            "heartbeat consumption %s", "paused" if orchestrator.heartbeats_paused else "resumed"
        )

    loop.add_signal_handler(signal.SIGUSR1, toggle)
    await run_until_stopped(orchestrator, settings.startup_retry_max)


async def run_until_stopped(orchestrator: EnhancedStreamOrchestrator, retry_max: float) -> None:
    """Run; while Kafka is unreachable, say so and retry with back-off until stopped.

    A daemon must not die because the broker is still starting (or briefly gone); an error
    that retrying cannot fix (bad settings, a topic with the wrong partition count) is raised.
    """
    delay = 1.0
    while True:
        try:
            await orchestrator.run()
            return
        except KafkaIOError as exc:
            if not exc.retriable:
                raise
            log.warning("Kafka unavailable (%s); retrying in %.0f s", exc, delay)
        try:
            async with asyncio.timeout(delay):
                await orchestrator._stop.wait()
            return  # stopped while waiting
        except TimeoutError:
            delay = min(delay * 2, retry_max)
