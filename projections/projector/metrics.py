"""The Faust projector's Prometheus metrics (every one is listed in docs/metrics.md).

How far behind it is, two ways, both in Kafka **offsets** (what the projector can know
without reading the log's last record; the seq lag is a PromQL difference with the
orchestrator's ``streamplane_control_log_seq``, see docs/metrics.md):

- ``streamplane_consumer_lag_offsets{topic}``: per topic it reads (``events``, ``heartbeats``),
  the partitions' high watermarks minus the consumer's positions (what it has not fetched);
- ``streamplane_projector_lag_offsets``: the control log's high watermark minus the next
  offset the projector would fold, less the one commit marker that ends the log (the
  orchestrator writes only in transactions): 0 when everything is folded.

Both are measured by a Faust timer every ``projector_metrics_interval`` seconds, in the
projector's event loop (the consumer's positions are asked of its thread); the applied seq
and the counters are read at scrape time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge

from events.topics import Topics
from telemetry.metrics import Derived, LoopLag, Spec, Value, process_registry, topic_label

log = logging.getLogger(__name__)

SPECS = (
    Spec("streamplane_projector_applied_seq", "gauge", "Seq of the last control event folded."),
    Spec("streamplane_projector_events_folded", "counter", "Control-log records folded."),
    Spec(
        "streamplane_projector_active",
        "gauge",
        "1 while this process holds the control log (and writes), 0 on a standby.",
    ),
    Spec("streamplane_projector_takeovers", "counter", "Times this process took the log over."),
    Spec(
        "streamplane_projector_resync_writes",
        "counter",
        "Writes of takeovers where the topic or a table differed from the caught-up fold.",
        ("target",),
    ),
)


class ProjectorMetrics:
    """The projector's registry: process metrics, loop lag, lags and dead letters."""

    def __init__(
        self, read: Callable[[], Mapping[str, Value]], registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = r = registry or process_registry()
        self.loop_lag = LoopLag(r)
        Derived(SPECS, read, r)
        self.consumer_lag = Gauge(
            "streamplane_consumer_lag_offsets",
            "High watermarks minus the consumer's positions, summed over a topic's partitions.",
            ("topic",),
            registry=r,
        )
        self.lag = Gauge(
            "streamplane_projector_lag_offsets",
            "Control-log offsets not yet folded (0 when caught up).",
            registry=r,
        )
        self.dead_letters = Counter(
            "streamplane_dead_letters",
            "Records sent to the dead-letter topic.",
            ("origin",),
            registry=r,
        )


#: where a takeover writes: the topic and the two tables it materialises
RESYNC_TARGETS = ("topic", "instances", "assignments")


def projector_samples(
    *,
    seq: int,
    folded: int,
    active: bool = False,
    takeovers: int = 0,
    resynced: Mapping[str, int] | None = None,
) -> dict[str, Value]:
    """The scrape-time samples (pure)."""
    return {
        "streamplane_projector_applied_seq": seq,
        "streamplane_projector_events_folded": folded,
        "streamplane_projector_active": int(active),
        "streamplane_projector_takeovers": takeovers,
        "streamplane_projector_resync_writes": {
            (target,): (resynced or {}).get(target, 0) for target in RESYNC_TARGETS
        },
    }


def fold_lag(highwater: int | None, next_offset: int) -> int | None:
    """Offsets of the control log not folded yet: all but the commit marker that closes the
    last transaction (None: the high watermark is not known yet)."""
    if highwater is None:
        return None
    return max(0, highwater - next_offset - 1)


async def measure_lag(
    consumer: Any,
    topics: Topics,
    next_offset: int,
    metrics: ProjectorMetrics,
    control: tuple[int | None, int | None] = (None, None),
) -> None:
    """Set the lag gauges from Faust's consumer (``next_offset``: the next control-log
    offset the projector would fold). ``control``: the control log's end and position as
    the holder's own reader sees them (Faust's consumer has that partition paused)."""
    behind: dict[str, int] = {}
    for tp in consumer.assignment():
        try:
            if tp.topic == topics.events and control[0] is not None:
                highwater, position = control
            else:
                highwater, position = consumer.highwater(tp), await consumer.position(tp)
        except KafkaError as exc:  # e.g. revoked meanwhile: measured again next time
            log.debug("lag of %s not measured: %s", tp, exc)
            continue
        if highwater is not None and position is not None:
            role = topic_label(tp.topic, topics.prefix)
            behind[role] = behind.get(role, 0) + max(0, highwater - position)
        if tp.topic == topics.events:
            lag = fold_lag(highwater, next_offset)
            if lag is not None:
                metrics.lag.set(lag)
    for role, offsets in behind.items():
        metrics.consumer_lag.labels(role).set(offsets)
