"""The read model's Prometheus metrics (every one is listed in docs/metrics.md).

How far behind it is, in Kafka **offsets** of the control log (what it knows for free after
each fetch: aiokafka's last stable offset of the partition, the end a ``read_committed``
reader can reach; the seq lag is a PromQL difference with the orchestrator's
``streamplane_control_log_seq``, see docs/metrics.md):

- ``streamplane_read_model_lag_offsets``: the log's last stable offset minus the offset the
  tracking row holds (committed to PostgreSQL): 0 when the tables are up to date;
- ``streamplane_consumer_lag_offsets{topic="events"}``: the same end minus the consumer's
  position (what it has not fetched yet).

Everything is read at scrape time from what :class:`~projections.read_model.ReadModelProjector`
keeps (:class:`ReadModelSnapshot`), plus the database manager's own metrics
(:mod:`projections.io.db_metrics`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter

from projections.io.db_metrics import watch_database
from projections.io.postgres import ResilientDatabaseManager
from telemetry.metrics import Derived, LoopLag, Spec, Value, process_registry

SPECS = (
    Spec("streamplane_read_model_applied_seq", "gauge", "Seq of the last event in the tables."),
    Spec(
        "streamplane_read_model_lag_offsets",
        "gauge",
        "Control-log offsets not yet committed to the tables (0 when up to date).",
    ),
    Spec(
        "streamplane_consumer_lag_offsets",
        "gauge",
        "The log's last stable offset minus the consumer's position.",
        ("topic",),
    ),
    Spec("streamplane_read_model_events_applied", "counter", "Control events written."),
    Spec("streamplane_read_model_batches", "counter", "Batches committed (one transaction each)."),
    Spec(
        "streamplane_read_model_waiting_for_database",
        "gauge",
        "1 while paused because PostgreSQL failed every retry (it tries again), else 0.",
    ),
    Spec(
        "streamplane_read_model_database_pauses",
        "counter",
        "Times the read model paused to wait for PostgreSQL.",
    ),
)


class ReadModelSnapshot(NamedTuple):
    """What the read model holds, as the metrics read it."""

    seq: int
    #: next offset to apply (the tracking row), and the consumer's position
    applied_offset: int
    position: int
    #: the log's last stable offset as of the last fetch (None: not fetched yet)
    log_end: int | None
    events: int
    batches: int
    #: paused, waiting for PostgreSQL; how many times it paused
    waiting: bool = False
    pauses: int = 0


def read_model_samples(s: ReadModelSnapshot) -> dict[str, Value]:
    """The samples of :data:`SPECS` for one snapshot (pure)."""
    samples: dict[str, Value] = {
        "streamplane_read_model_applied_seq": s.seq,
        "streamplane_read_model_events_applied": s.events,
        "streamplane_read_model_batches": s.batches,
        "streamplane_read_model_waiting_for_database": int(s.waiting),
        "streamplane_read_model_database_pauses": s.pauses,
    }
    if s.log_end is not None:
        samples["streamplane_read_model_lag_offsets"] = max(0, s.log_end - s.applied_offset)
        samples["streamplane_consumer_lag_offsets"] = {("events",): max(0, s.log_end - s.position)}
    return samples


class ReadModelMetrics:
    """The read model's metrics, in its own registry (then with process metrics and loop
    lag, served on ``metrics_address``) or in the registry of the process it runs in (the
    API: that process serves it)."""

    def __init__(
        self,
        snapshot: Callable[[], ReadModelSnapshot],
        db: ResilientDatabaseManager,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.owns_registry = registry is None
        self.registry = r = registry or process_registry()
        self.loop_lag = LoopLag(r) if self.owns_registry else None
        Derived(SPECS, lambda: read_model_samples(snapshot()), r)
        watch_database(db, r)
        self.dead_letters = Counter(
            "streamplane_dead_letters",
            "Records sent to the dead-letter topic.",
            ("origin",),
            registry=r,
        )
