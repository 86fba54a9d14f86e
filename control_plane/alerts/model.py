"""The alert engine's values: what goes in (:class:`Observation`, :class:`AlertConfig`) and
what comes out (:class:`Alert`). All frozen, so an engine state can be kept, compared, replayed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from control_plane.alerts.baseline import BaselineConfig
from control_plane.alerts.errors import InvalidConfig
from events.base import ControlEvent
from projections.fold.state import ClusterState

#: a plain JSON value of the evidence (a tuple is written as an array)
Json = str | int | float | bool | None | tuple[str, ...]
Evidence = tuple[tuple[str, Json], ...]

#: the metric names the built-in rules read (the I/O side feeds them in Observation.metrics)
HEARTBEAT_LATENCY = "heartbeat_latency_seconds"
FAILOVER_RATE = "failover_rate"
PROJECTION_LAG = "projection_lag_seq"
READ_MODEL_LAG = "read_model_lag_seq"
DEAD_LETTERS = "dead_letters_total"
LONG_TRANSACTIONS = "long_db_transactions"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Condition(NamedTuple):
    """What a rule finds true now; the engine turns it into :class:`Alert` transitions."""

    key: str  # "rule:subject", stable across evaluations
    severity: Severity
    summary: str
    evidence: Evidence
    action: str


class Alert(NamedTuple):
    """One transition (or, in :func:`~control_plane.alerts.engine.firing`, one firing alert)."""

    key: str
    severity: Severity
    summary: str
    evidence: Evidence
    action: str
    #: ``state.seq`` of the control log when this was decided
    seq: int
    status: AlertStatus
    at: datetime
    #: status changes of this key the rate limit held back before this transition
    held_back: int = 0

    @property
    def rule(self) -> str:
        return self.key.partition(":")[0]

    @property
    def subject(self) -> str:
        return self.key.partition(":")[2]

    def to_json(self) -> dict[str, object]:
        """A plain dict for the alerts topic or a webhook (tuples become lists)."""
        return {
            "key": self.key,
            "rule": self.rule,
            "subject": self.subject,
            "severity": self.severity.value,
            "status": self.status.value,
            "summary": self.summary,
            "evidence": {k: list(v) if isinstance(v, tuple) else v for k, v in self.evidence},
            "action": self.action,
            "seq": self.seq,
            "at": self.at.isoformat(),
            "held_back": self.held_back,
        }


class Refusal(NamedTuple):
    """A heartbeat the orchestrator refused (a dead letter of ``UnauthenticatedError``):
    ``source`` is the server id it claimed, ``reason`` why it did not count."""

    source: str
    reason: str
    at: datetime


class Observation(NamedTuple):
    """What one evaluation sees: the folded state, the control events folded since the last
    evaluation (older or repeated ones are ignored by ``seq``), the latest metric samples,
    and the heartbeats refused since the last evaluation (each given once)."""

    state: ClusterState
    events: tuple[ControlEvent, ...] = ()
    metrics: Mapping[str, float] = MappingProxyType({})
    refused: tuple[Refusal, ...] = ()


class SignalSpec(NamedTuple):
    """A metric judged against its learned baseline (and optional static bound): its alert
    key is ``<rule>:cluster``, its summary names it ``what``, and ``action`` says what to do."""

    name: str
    rule: str
    what: str
    action: str
    baseline: BaselineConfig = BaselineConfig()
    severity: Severity = Severity.WARNING


_LAG = BaselineConfig(min_deviation=50, bound=10_000)
DEFAULT_SIGNALS = (
    SignalSpec(
        HEARTBEAT_LATENCY,
        "heartbeat_latency_high",
        "heartbeat latency",
        "check the network and the brokers between workers and the orchestrator",
        BaselineConfig(min_deviation=0.01, bound=5.0),
    ),
    SignalSpec(
        FAILOVER_RATE,  # per minute: one failover must not look unusual on a quiet cluster
        "failover_rate_high",
        "failover rate",
        "see which instances fail (instance_flapping, zone_failures) before failovers cascade",
        BaselineConfig(min_deviation=0.25),
    ),
    SignalSpec(
        PROJECTION_LAG,
        "projection_lag_growing",
        "projection lag",
        "check the projector: is it running, and is its database keeping up?",
        _LAG,
    ),
    SignalSpec(
        READ_MODEL_LAG,
        "read_model_lag_growing",
        "read-model lag",
        "check the read-model writer and PostgreSQL (locks, long transactions, disk)",
        _LAG,
    ),
)


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Every static bound of the rules and of de-duplication, with sane defaults."""

    flap_window: timedelta = timedelta(minutes=10)
    flap_count: int = 3  # drops (suspicion or failure) of one instance within flap_window
    zone_window: timedelta = timedelta(minutes=5)
    zone_count: int = 2  # distinct instances of one zone dropping within zone_window
    unassigned_for: timedelta = timedelta(minutes=2)
    poison_instances: int = 3  # an unparked stream that failed on this many instances
    reject_window: timedelta = timedelta(minutes=10)
    reject_count: int = 3  # rejections of one command type within reject_window
    #: dead_letters fires this long after the counter last went up
    dead_letter_window: timedelta = timedelta(minutes=15)
    long_transactions_max: int = 0
    #: heartbeat_refused:SOURCE fires while SOURCE had a heartbeat refused within this window
    refused_window: timedelta = timedelta(minutes=15)
    #: sources remembered at most (ids are the sender's claim: a spray of ids must not make
    #: unbounded alerts; the others still count in dead_letters and the metric)
    refused_sources_max: int = 64
    signals: tuple[SignalSpec, ...] = DEFAULT_SIGNALS
    #: a firing alert resolves once its condition has been clear this long (hysteresis)
    resolve_after: timedelta = timedelta(minutes=1)
    rate_window: timedelta = timedelta(minutes=15)
    rate_max: int = 4  # transitions per key within rate_window

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            bad = (isinstance(value, timedelta) and value < timedelta(0)) or (
                isinstance(value, int) and value < (0 if f.name == "long_transactions_max" else 1)
            )
            if bad:
                raise InvalidConfig(f"AlertConfig.{f.name} out of range: {value!r}")
        names = [s.name for s in self.signals]
        if len(set(names)) != len(names):
            raise InvalidConfig(f"AlertConfig.signals names a signal twice: {names!r}")
