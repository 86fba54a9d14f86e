"""The leader's periodic consistency check (docs/consistency.md, "Periodic check").

Two modes, each due on its own period (``consistency_check_interval``,
``consistency_full_interval``; 0 turns one off), run in a background task after a cycle's
commit, at most one at a time, so that a cycle never waits for them:

- **incremental** (every minute by default): the leader's state *is* the fold of the log up to
  its seq, so nothing is replayed: it is compared with the ``<prefix>.desired`` records and
  the heartbeats it holds (:class:`~control_plane.decide.checker.ConsistencyChecker`), and
  only the fold's findings new since the last check are reported. Cost: one read of the
  compacted desired topic (one record per instance) and a pass over the state.
- **full** (hourly by default): the same, plus the log replayed from offset 0 up to where the
  state stood when the check began, and that replay compared with the state (its canonical
  digest): in-memory state that drifted from its own log shows up as ``projection_drift`` of
  the view ``orchestrator``.

It reports (a log line per kind, the ``streamplane_consistency_*`` metrics); repairs are on
demand (``streamplane check --repair``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from control_plane.checker_io import read_desired
from control_plane.checker_run import CheckSettings
from control_plane.decide.checker import (
    CheckViews,
    ConsistencyChecker,
    ConsistencyReport,
    Divergence,
    DivergenceKind,
    LastHeartbeat,
)
from control_plane.decide.liveness import LivenessView
from control_plane.orchestrator.settings import OrchestratorSettings
from events.topics import Topics
from kafka_auth import Brokers
from projections.errors import ProjectionError
from projections.fold.canonical import state_digest
from projections.fold.state import ClusterState, replace
from projections.io.replay import ReplaySettings, replay

log = logging.getLogger("streamplane.consistency")


class ConsistencyMetrics:
    """``streamplane_consistency_*`` (docs/metrics.md)."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.score = Gauge(
            "streamplane_consistency_score",
            "consistency_score of the last check (1: clean).",
            registry=r,
        )
        self.score.set(1.0)
        self.divergences = Gauge(
            "streamplane_consistency_divergences",
            "Divergences the last check found, by kind.",
            ("kind",),
            registry=r,
        )
        self.checks = Counter(
            "streamplane_consistency_checks",
            "Periodic consistency checks run.",
            ("mode",),
            registry=r,
        )
        self.seconds = Histogram(
            "streamplane_consistency_check_seconds",
            "One periodic consistency check.",
            ("mode",),
            registry=r,
        )

    def observe(self, mode: str, report: ConsistencyReport, seconds: float) -> None:
        self.checks.labels(mode).inc()
        self.seconds.labels(mode).observe(seconds)
        self.score.set(report.consistency_score)
        counts = report.counts
        for kind in DivergenceKind:
            self.divergences.labels(kind.value).set(counts.get(kind.value, 0))


class ConsistencyWatch:
    """Runs the periodic check; see the module docstring."""

    def __init__(
        self,
        bootstrap: Brokers,
        topics: Topics,
        *,
        every: float,
        full_every: float,
        check: CheckSettings,
        registry: CollectorRegistry,
        kafka_timeout: float,
        clock: Callable[[], datetime],
    ) -> None:
        self.bootstrap, self.topics, self.check = bootstrap, topics, check
        self.every, self.full_every = every, full_every
        self.kafka_timeout = kafka_timeout
        self.clock = clock
        self.metrics = ConsistencyMetrics(registry)
        self.checker = ConsistencyChecker(check.config())
        started = clock()
        self._last, self._last_full = started, started
        #: findings already reported (only new ones are, incrementally)
        self._reported: frozenset[str] = frozenset()
        self._task: asyncio.Task[None] | None = None
        self.last_report: ConsistencyReport | None = None

    @classmethod
    def of(
        cls,
        settings: OrchestratorSettings,
        topics: Topics,
        registry: CollectorRegistry,
        clock: Callable[[], datetime],
    ) -> ConsistencyWatch:
        """The watch the orchestrator's settings describe."""
        return cls(
            settings.kafka_access,
            topics,
            every=settings.consistency_check_interval,
            full_every=settings.consistency_full_interval,
            check=settings.check,
            registry=registry,
            kafka_timeout=settings.request_timeout_s,
            clock=clock,
        )

    def due(self, now: datetime) -> str | None:
        """ "full", "incremental" or None (also None while a check runs)."""
        if self._task is not None and not self._task.done():
            return None
        if self.full_every and now - self._last_full >= timedelta(seconds=self.full_every):
            return "full"
        if self.every and now - self._last >= timedelta(seconds=self.every):
            return "incremental"
        return None

    def after_commit(
        self, state: ClusterState, log_next: int, liveness: LivenessView, now: datetime
    ) -> None:
        """Start a check in the background when one is due (the leader calls it per cycle)."""
        mode = self.due(now)
        if mode is None:
            return
        self._last = now
        if mode == "full":
            self._last_full = now
        beats = {sid: LastHeartbeat(s.heartbeat, s.received_at) for sid, s in liveness.last.items()}
        self._task = asyncio.create_task(
            self._run(mode, state, log_next, beats), name=f"consistency:{mode}"
        )

    async def _run(
        self, mode: str, state: ClusterState, log_next: int, beats: dict[str, LastHeartbeat]
    ) -> None:
        began = time.perf_counter()
        try:
            desired = await read_desired(
                self.bootstrap, self.topics, kafka_timeout=self.kafka_timeout
            )
            extra = await self._replayed(state, log_next) if mode == "full" else []
        except ProjectionError as exc:
            log.warning("%s consistency check skipped: %s", mode, exc)
            return
        views = CheckViews(self.clock(), beats, desired, (), self._reported)
        report = self.checker.check(state, views)
        report = report._replace(divergences=report.divergences + tuple(extra))
        self._reported = self._reported | {f.event_id for f in state.findings}
        self.last_report = report
        self.metrics.observe(mode, report, time.perf_counter() - began)
        for kind, n in report.counts.items():
            log.warning("%s consistency check at seq %d: %d %s", mode, report.as_of_seq, n, kind)

    async def _replayed(self, state: ClusterState, log_next: int) -> list[Divergence]:
        """The log replayed to ``log_next`` against ``state`` (their canonical digests)."""
        cfg = ReplaySettings(kafka_timeout=self.kafka_timeout)
        head = await replay(self.bootstrap, self.topics.events, until_offset=log_next, settings=cfg)
        want, got = await asyncio.to_thread(lambda: (_digest(head.state), _digest(state)))
        if want == got:
            return []
        detail = (
            f"state at seq {state.seq} digest {got[:12]} != the replay's {want[:12]}"
            f" (seq {head.state.seq})"
        )
        return [
            Divergence(DivergenceKind.PROJECTION_DRIFT, "orchestrator", key="state", detail=detail)
        ]

    async def aclose(self) -> None:
        """Cancel a check in flight (on step-down and shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


def _digest(state: ClusterState) -> str:
    """The state's digest without the fold's findings: the leader writes and never reads its
    log, so an event someone else wrote (refused by the fold) is in the replay's findings
    only; findings are the checker's own kinds."""
    return state_digest(replace(state, findings=(), finding_count=0))


__all__ = ["ConsistencyMetrics", "ConsistencyWatch"]
