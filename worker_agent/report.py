"""What the worker tells the orchestrator: stream reports and the heartbeat, built purely.

:class:`ProcessSampler` is the one impure piece (it reads the process's CPU time and RSS).
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable, Mapping
from datetime import datetime
from ipaddress import ip_address
from typing import NamedTuple

from events.heartbeat import Heartbeat, PerformanceMetrics, StreamReport, StreamRunState
from worker_agent.handlers import StreamHealth
from worker_agent.reconcile import RetryState

#: errors are cut to this length: a heartbeat carries hundreds of streams
ERROR_MAX = 1000

Fingerprint = tuple[object, ...]


class Identity(NamedTuple):
    """Who the worker is; fixed for the process (the incarnation is not: it changes on fence)."""

    server_id: str
    ip: str
    port: int
    max_streams: int
    zone: str | None
    tags: tuple[str, ...]


def _short(error: str | None) -> str | None:
    return None if error is None else error[:ERROR_MAX]


def stream_reports(
    health: Mapping[str, StreamHealth],
    retries: Mapping[str, RetryState],
    desired: Iterable[str],
) -> tuple[StreamReport, ...]:
    """One report per stream the handler holds, plus each desired stream whose start failed."""
    reports = {
        sid: StreamReport(
            stream_id=sid, state=h.state, error=_short(h.error), performance=h.performance
        )
        for sid, h in health.items()
    }
    wanted = set(desired)
    for sid, retry in retries.items():
        if sid in wanted and sid not in reports:
            reports[sid] = StreamReport(
                stream_id=sid, state=StreamRunState.FAILED, error=_short(retry.error)
            )
    return tuple(reports[sid] for sid in sorted(reports))


def metrics_from(
    reports: Iterable[StreamReport], *, cpu_percent: float, memory_mb: float
) -> PerformanceMetrics:
    """Process metrics plus the streams' mean latency and the share of failed streams."""
    items = list(reports)
    latencies = [r.performance.latency_ms for r in items if r.performance.latency_ms is not None]
    failed = sum(1 for r in items if r.state is StreamRunState.FAILED)
    return PerformanceMetrics(
        cpu_percent=min(max(cpu_percent, 0.0), 100_000.0),
        memory_mb=max(memory_mb, 0.0),
        avg_latency_ms=sum(latencies) / len(latencies) if latencies else None,
        error_rate=failed / len(items) if items else 0.0,
    )


def build_heartbeat(
    identity: Identity,
    *,
    incarnation: str,
    reports: tuple[StreamReport, ...],
    metrics: PerformanceMetrics,
    mismatch: tuple[str, ...],
    leaving: bool,
    desired_seq: int,
    now: datetime,
    event_id: str,
) -> Heartbeat:
    """The heartbeat message; ``now`` and ``event_id`` come from the caller."""
    return Heartbeat(
        id=event_id,
        source=f"streamplane/worker/{identity.server_id}",
        time=now,
        server_id=identity.server_id,
        incarnation=incarnation,
        ip=ip_address(identity.ip),
        port=identity.port,
        max_streams=identity.max_streams,
        zone=identity.zone,
        tags=identity.tags,
        sent_at=now.isoformat(),
        streams=reports,
        metrics=metrics,
        desired_mismatch=mismatch,
        leaving=leaving,
        desired_seq=desired_seq,
    )


def fingerprint(
    incarnation: str, reports: Iterable[StreamReport], mismatch: tuple[str, ...]
) -> Fingerprint:
    """What counts as a change worth an immediate heartbeat (performance figures do not)."""
    return (incarnation, tuple((r.stream_id, r.state, r.error) for r in reports), mismatch)


class ProcessSampler:
    """CPU percent since the previous sample, and resident memory, of this process."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def sample(self) -> tuple[float, float]:
        """``(cpu_percent, memory_mb)``; CPU percent may exceed 100 on several cores."""
        cpu, wall = time.process_time(), time.monotonic()
        elapsed = wall - self._wall
        percent = 100.0 * (cpu - self._cpu) / elapsed if elapsed > 0 else 0.0
        self._cpu, self._wall = cpu, wall
        return percent, _rss_mb()


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        # Not Linux: the peak RSS (KiB on Linux/BSD) is the best portable figure.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
