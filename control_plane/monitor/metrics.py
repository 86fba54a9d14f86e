"""The monitor's Prometheus metrics (docs/metrics.md and docs/alerts.md list them).

Read at scrape time from what the monitor holds (:class:`Seen`): the alerts firing now by
rule and severity, the last sample of every signal it fed the engine, webhook outcomes.
Labels are bounded (a rule, a severity, a signal name, an outcome): never an alert's subject.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PromCounter

from control_plane.alerts import Alert, AlertStatus
from telemetry.metrics import LATENCY_BUCKETS, Derived, LoopLag, Spec, Value, process_registry

SPECS = (
    Spec("streamplane_alerts_firing", "gauge", "Alerts firing now.", ("rule", "severity")),
    Spec(
        "streamplane_monitor_signal",
        "gauge",
        "The last sample of each signal the monitor fed the alert engine.",
        ("signal",),
    ),
    Spec(
        "streamplane_webhook_deliveries",
        "counter",
        "Alert transitions by webhook outcome (delivered, failed, refused, dropped, skipped).",
        ("outcome",),
    ),
    Spec("streamplane_webhook_queued", "gauge", "Transitions waiting for a webhook."),
    Spec(
        "streamplane_monitor_publishing",
        "gauge",
        "1 while this monitor evaluates and publishes, 0 while it stands by for another.",
    ),
)


class Seen(NamedTuple):
    """What the monitor holds, as the gauges read it."""

    firing: tuple[Alert, ...]
    signals: Mapping[str, float]
    webhook_outcomes: Counter[str]
    webhook_queued: int
    publishing: bool = False


def samples(seen: Seen) -> dict[str, Value]:
    """The scrape-time values of :data:`SPECS` (pure)."""
    firing = Counter((a.rule, a.severity.value) for a in seen.firing)
    return {
        "streamplane_alerts_firing": {k: float(n) for k, n in firing.items()},
        "streamplane_monitor_signal": {(k,): v for k, v in seen.signals.items()},
        "streamplane_webhook_deliveries": {
            (k,): float(n) for k, n in seen.webhook_outcomes.items()
        },
        "streamplane_webhook_queued": float(seen.webhook_queued),
        "streamplane_monitor_publishing": float(seen.publishing),
    }


class MonitorMetrics:
    """The monitor's registry: the derived gauges, evaluation timing and transitions."""

    def __init__(self, seen: Callable[[], Seen], registry: CollectorRegistry | None = None):
        self.registry = r = registry or process_registry()
        self.loop_lag = LoopLag(r)
        Derived(SPECS, lambda: samples(seen()), r)
        self.evaluation = Histogram(
            "streamplane_monitor_evaluation_seconds",
            "One evaluation: catch up with the log, gather the signals, judge, publish.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.transitions = PromCounter(
            "streamplane_alert_transitions",
            "Alert transitions published, by rule and status.",
            ("rule", "status"),
            registry=r,
        )
        self.source_errors = PromCounter(
            "streamplane_monitor_source_errors",
            "Signal sources that failed during an evaluation (left out of it).",
            ("source",),
            registry=r,
        )

    def published(self, alerts: tuple[Alert, ...]) -> None:
        for a in alerts:
            status = "firing" if a.status is AlertStatus.FIRING else "resolved"
            self.transitions.labels(a.rule, status).inc()
