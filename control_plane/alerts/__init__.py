"""The pure alert engine (the seed's AlertManager): rules over the folded state, the new
control events and metric samples, with learned thresholds; de-duplicated, rate-limited
transitions out. No clock, no I/O: the shell (the seed's HealthMonitor) feeds it.

A caller keeps an :class:`AlertManager` (or an :class:`EngineState`) and, periodically, calls
``evaluate(Observation(state, events, metrics), now=...)`` with: the folded ``ClusterState``;
the control events folded since the last call (a repeated ``seq`` is ignored); the latest metric
samples by name (``heartbeat_latency_seconds``, ``failover_rate`` in failovers per minute,
``projection_lag_seq``, ``read_model_lag_seq``, ``dead_letters_total`` (a counter),
``long_db_transactions`` (a count); a name missing keeps its last sample); and ``now`` (aware).
It publishes the transitions that come back (``Alert.to_json()``).

Rules (key ``rule:subject``): ``instance_flapping`` (drops within a window, or quarantined),
``zone_failures`` (several instances of one zone down within a window),
``heartbeat_latency_high`` / ``failover_rate_high`` / ``projection_lag_growing`` /
``read_model_lag_growing`` (learned baseline or static bound), ``streams_unassigned``
(``capacity_free`` or ``no_capacity``), ``poison_stream``, ``maintenance_mode`` (incl. the
mass-failure guard), ``long_db_transactions``, ``dead_letters``, ``command_rejected`` (per type).
"""

from control_plane.alerts.baseline import Baseline, BaselineConfig, Direction, Verdict, update
from control_plane.alerts.engine import AlertManager, EngineState, evaluate, firing
from control_plane.alerts.errors import AlertError, InvalidConfig, InvalidInput
from control_plane.alerts.model import (
    Alert,
    AlertConfig,
    AlertStatus,
    Condition,
    Observation,
    Severity,
    SignalSpec,
)

__all__ = [
    "Alert",
    "AlertConfig",
    "AlertError",
    "AlertManager",
    "AlertStatus",
    "Baseline",
    "BaselineConfig",
    "Condition",
    "Direction",
    "EngineState",
    "InvalidConfig",
    "InvalidInput",
    "Observation",
    "Severity",
    "SignalSpec",
    "Verdict",
    "evaluate",
    "firing",
    "update",
]
