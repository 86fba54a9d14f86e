"""The leader's cycle marks (:mod:`control_plane.decide.marks`): gathered each cycle, written
with the next transaction (or alone after ``cycle_marks_flush`` seconds of idle cycles).

Shell side only: which heartbeat reads and command offsets each cycle saw, its ``now`` and
timer, kept in memory until they ride a transaction. Nothing here decides anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from control_plane.decide import Inputs
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness
from control_plane.decide.marks import (
    Batch,
    CycleMark,
    MarkRecord,
    Sighting,
    TermMark,
    encode_marks,
)
from control_plane.orchestrator.heartbeats import HeartbeatPoller
from control_plane.orchestrator.metrics import OrchestratorMetrics
from control_plane.orchestrator.settings import OrchestratorSettings
from events.base import ControlEvent

#: marks kept at most while waiting for a transaction (a flush is due long before)
MAX_PENDING = 10_000


class CycleMarker:
    """Collects a term's cycle marks; :meth:`take` hands them over as one record."""

    def __init__(
        self,
        node: str,
        *,
        flush_after: timedelta,
        config: DecideConfig,
        on_take: Callable[[int], None] | None = None,
    ) -> None:
        self.node = node
        self.flush_after = flush_after
        self.config = config
        #: told the size of each record handed to a transaction (a metric)
        self.on_take = on_take
        self._epoch = 0
        self._n = 0
        self._term: TermMark | None = None
        self._pending: list[CycleMark] = []
        self._since: datetime | None = None

    @classmethod
    def open(
        cls,
        settings: OrchestratorSettings,
        node: str,
        config: DecideConfig,
        metrics: OrchestratorMetrics,
    ) -> CycleMarker | None:
        """The marker of an orchestrator, or None when ``record_cycles`` is off."""
        if not settings.record_cycles:
            return None
        flush = timedelta(seconds=settings.cycle_marks_flush)
        return cls(node, flush_after=flush, config=config, on_take=metrics.cycle_mark_bytes.inc)

    def begin(
        self,
        *,
        epoch: int,
        seq: int,
        liveness: Liveness,
        where: dict[str, tuple[int, int]],
        positions: tuple[tuple[int, int], ...],
        config: DecideConfig,
    ) -> None:
        """A term starts: what the liveness knows, by heartbeat position."""
        self._epoch, self._n, self._pending, self._since = epoch, 0, [], None
        sightings = tuple(
            Sighting(sid, *where[sid], s.received_at)
            for sid, s in liveness.last.items()
            if sid in where
        )
        intervals = {
            sid: tuple(w.samples)
            for sid, w in liveness.intervals.items()
            if config.failure_detector == "phi" and w.samples
        }
        self._term = TermMark(
            epoch=epoch,
            seq=seq,
            watch_started_at=liveness.watch_started_at,
            phi_window=liveness.phi_window,
            config=config.model_dump(mode="json"),
            sightings=sightings,
            positions=positions,
            intervals=intervals,
        )

    def cycle(
        self,
        *,
        now: datetime,
        observer_lag: timedelta,
        check_balance: bool,
        batches: Sequence[Batch],
        commands: tuple[int, int] | None,
        seq: int,
        watch_started_at: datetime | None,
    ) -> None:
        """Note one cycle (call after ``decide``, before its commit)."""
        self._n += 1
        mark = CycleMark(
            self._n, now, observer_lag, check_balance, tuple(batches), commands, seq,
            watch_started_at,
        )  # fmt: skip
        if len(self._pending) >= MAX_PENDING:
            del self._pending[0]  # a replay will say the marks have a hole
        self._pending.append(mark)
        if self._since is None:
            self._since = now

    async def open_term(
        self, term: ControlEvent, liveness: Liveness, poller: HeartbeatPoller
    ) -> bytes | None:
        """The take-over: begin the term and return its first record (the term mark)."""
        self.begin(
            epoch=term.epoch,
            seq=term.seq,
            liveness=liveness,
            where=poller.where,
            positions=await poller.positions(),
            config=self.config,
        )
        return self.take()

    def after_decide(
        self,
        inputs: Inputs,
        batches: Sequence[Batch],
        *,
        seq: int,
        commands: tuple[int, int] | None,
        watch: datetime | None,
        now: datetime,
        busy: bool,
    ) -> bytes | None:
        """Note the cycle; the pending marks to write now: with the cycle's transaction
        (``busy``), or alone once idle marks have waited ``flush_after``."""
        self.cycle(
            now=now,
            observer_lag=inputs.observer_lag,
            check_balance=inputs.check_balance,
            batches=batches,
            commands=commands,
            seq=seq,
            watch_started_at=watch,
        )
        return self.take() if busy or self.due(now) else None

    def due(self, now: datetime) -> bool:
        """Idle marks have waited long enough: write them alone."""
        return self._since is not None and now - self._since >= self.flush_after

    def take(self) -> bytes | None:
        """The pending marks (and the term mark, first time) as one record; None if none."""
        if not self._pending and self._term is None:
            return None
        record = MarkRecord(self.node, self._epoch, tuple(self._pending), self._term)
        self._pending, self._since, self._term = [], None, None
        raw = encode_marks(record)
        if self.on_take is not None:
            self.on_take(len(raw))
        return raw

    def drop(self) -> None:
        """The term ended (or its transaction failed): forget what was not written."""
        self._pending, self._since, self._term = [], None, None
