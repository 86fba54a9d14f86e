"""Every alert rule fires on a state built by folding real control events (or on a metric
series) and resolves when its condition clears. Pure: no clock, no I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from control_plane.alerts import (
    Alert,
    AlertConfig,
    AlertManager,
    AlertStatus,
    BaselineConfig,
    Direction,
    Observation,
    Severity,
    SignalSpec,
)
from events import control as ev
from events.base import ControlEvent
from projections.fold import apply
from projections.fold.state import ClusterState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
#: resolve at the first clear evaluation, so each test shows the rule, not the hysteresis
CONFIG = AlertConfig(resolve_after=timedelta(0))


class Cluster:
    """A control log built event by event (each folded without a finding), watched by an
    AlertManager that sees the events appended since its last evaluation."""

    def __init__(self, config: AlertConfig = CONFIG) -> None:
        self.now = T0
        self.log: list[ControlEvent] = []
        self.state = ClusterState()
        self.seen = 0
        self.incarnations: dict[str, int] = {}
        self.manager = AlertManager(config)
        self.add(ev.LeaderElected, leader_id="o1")

    def add(self, kind: type[ControlEvent], **fields: Any) -> ControlEvent:
        seq = len(self.log) + 1
        event = kind(id=f"e{seq}", source="test", time=self.now, seq=seq, epoch=1, **fields)
        self.state = apply(self.state, event)
        assert self.state.finding_count == 0, self.state.findings
        self.log.append(event)
        return event

    def inc(self, server: str) -> str:
        return f"{server}-{self.incarnations[server]}"

    def register(self, server: str, *, zone: str | None = None, capacity: int = 4) -> None:
        self.incarnations[server] = self.incarnations.get(server, 0) + 1
        self.add(
            ev.InstanceRegistered,
            server_id=server,
            incarnation=self.inc(server),
            ip="10.0.0.1",
            port=8000,
            max_streams=capacity,
            zone=zone,
        )

    def instance(self, kind: type[ControlEvent], server: str, **fields: Any) -> None:
        self.add(kind, server_id=server, incarnation=self.inc(server), **fields)

    def assign(self, stream: str, server: str) -> None:
        self.add(
            ev.StreamAssigned,
            stream_id=stream,
            server_id=server,
            incarnation=self.inc(server),
            reason="new_stream",
        )

    def tick(self, seconds: float = 10, **metrics: float) -> list[Alert]:
        """Let time pass, then evaluate: the transitions that came out."""
        self.now += timedelta(seconds=seconds)
        obs = Observation(self.state, tuple(self.log[self.seen :]), metrics)
        self.seen = len(self.log)
        self.manager, out = self.manager.evaluate(obs, now=self.now)
        return list(out)

    def keys(self) -> set[str]:
        return {a.key for a in self.manager.firing()}


def fired(out: list[Alert]) -> dict[str, Alert]:
    return {a.key: a for a in out if a.status is AlertStatus.FIRING}


def resolved(out: list[Alert]) -> set[str]:
    return {a.key for a in out if a.status is AlertStatus.RESOLVED}


def test_an_instance_going_down_repeatedly_is_flapping_until_the_window_passes() -> None:
    c = Cluster()
    c.register("w1")
    for _ in range(2):
        c.instance(ev.InstanceSuspected, "w1")
        c.instance(ev.InstanceRecovered, "w1")
    assert c.tick() == []  # two drops: below flap_count (3)
    c.instance(ev.InstanceSuspected, "w1")
    c.instance(ev.InstanceFailed, "w1")  # the same drop: a suspicion that became a failure
    alert = fired(c.tick())["instance_flapping:w1"]
    assert alert.severity is Severity.WARNING and dict(alert.evidence)["drops"] == 3
    assert alert.seq == c.state.seq
    assert c.tick(CONFIG.flap_window.total_seconds() - 30) == []  # the first drop is still in
    assert resolved(c.tick()) == {"instance_flapping:w1"}


def test_a_failure_after_its_suspicion_counts_once() -> None:
    c = Cluster()
    c.register("w1")
    for _ in range(2):
        c.instance(ev.InstanceSuspected, "w1")
        c.instance(ev.InstanceFailed, "w1")
        c.register("w1")
    c.tick()
    assert dict(c.manager.state.memory.drops)["w1"][-1].open is False
    assert len(c.manager.state.memory.drops["w1"]) == 2
    assert c.keys() == set()


def test_a_quarantined_instance_is_flapping_until_it_recovers() -> None:
    c = Cluster()
    c.register("w1")
    c.add(ev.InstanceQuarantined, server_id="w1", until=T0 + timedelta(hours=1))
    alert = fired(c.tick())["instance_flapping:w1"]
    assert "quarantined" in alert.summary
    c.instance(ev.InstanceRecovered, "w1")
    assert resolved(c.tick()) == {"instance_flapping:w1"}


def test_several_instances_of_one_zone_going_down_is_a_zone_pattern() -> None:
    c = Cluster()
    for server, zone in (("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")):
        c.register(server, zone=zone)
    c.instance(ev.InstanceFailed, "a1")
    c.instance(ev.InstanceFailed, "b1")
    assert c.tick() == []  # one per zone: no pattern
    c.instance(ev.InstanceSuspected, "a2")
    alert = fired(c.tick())["zone_failures:a"]
    assert alert.severity is Severity.CRITICAL
    assert dict(alert.evidence)["instances"] == ("a1", "a2")
    c.tick(CONFIG.zone_window.total_seconds())
    assert c.keys() == set()


@pytest.mark.parametrize(
    ("signal", "rule", "usual", "high"),
    [
        ("heartbeat_latency_seconds", "heartbeat_latency_high", 0.05, 0.5),
        ("failover_rate", "failover_rate_high", 0.0, 3.0),
        ("projection_lag_seq", "projection_lag_growing", 20.0, 2_000.0),
        ("read_model_lag_seq", "read_model_lag_growing", 20.0, 2_000.0),
    ],
)
def test_a_signal_above_its_learned_normal_fires_and_resolves_when_back(
    signal: str, rule: str, usual: float, high: float
) -> None:
    c = Cluster()
    for i in range(30):
        assert c.tick(**{signal: usual * (1 + 0.05 * (i % 3))}) == []
    assert c.tick(**{signal: high}) == []  # one sample is a spike
    alert = fired(c.tick(**{signal: high}))[f"{rule}:cluster"]
    assert dict(alert.evidence)["cause"] == "anomaly" and dict(alert.evidence)["value"] == high
    assert c.tick() == []  # a missing sample changes nothing
    assert resolved(c.tick(**{signal: usual})) == {f"{rule}:cluster"}


def test_a_caller_adds_a_lower_is_bad_signal_with_its_own_rule() -> None:
    spec = SignalSpec(
        "events_per_second",
        "throughput_low",
        "throughput",
        "check the workers' sources",
        BaselineConfig(direction=Direction.DOWN),
    )
    c = Cluster(replace(CONFIG, signals=(*CONFIG.signals, spec)))
    for _ in range(30):
        c.tick(events_per_second=1000)
    assert c.tick(events_per_second=5000) + c.tick(events_per_second=5000) == []  # more is fine
    c.tick(events_per_second=100)
    alert = fired(c.tick(events_per_second=100))["throughput_low:cluster"]
    assert alert.summary.startswith("throughput is 100,") and alert.action == spec.action


def test_a_static_bound_fires_from_the_first_sample() -> None:
    c = Cluster()
    alert = fired(c.tick(projection_lag_seq=20_000))["projection_lag_growing:cluster"]
    assert dict(alert.evidence)["cause"] == "bound" and "bound" in alert.summary


def test_a_step_that_persists_becomes_the_new_normal() -> None:
    c = Cluster()
    for _ in range(30):
        c.tick(heartbeat_latency_seconds=0.05)
    assert fired(c.tick(heartbeat_latency_seconds=0.3) + c.tick(heartbeat_latency_seconds=0.3))
    out = [a for _ in range(28) for a in c.tick(heartbeat_latency_seconds=0.3)]
    assert resolved(out) == {"heartbeat_latency_high:cluster"}


def test_streams_waiting_too_long_say_whether_capacity_exists() -> None:
    c = Cluster()
    c.add(ev.StreamRegistered, stream_id="s1", weight=2)
    assert c.tick(60) == []  # waiting, not for long yet
    alert = fired(c.tick(60))["streams_unassigned:no_capacity"]
    assert dict(alert.evidence)["oldest_waiting_seconds"] == 120.0
    c.register("w1", capacity=1)
    assert c.tick() == []  # room for 1, s1 weighs 2: still no capacity for it
    c.add(ev.InstanceCapacityChanged, server_id="w1", max_streams=4)
    out = c.tick()
    assert set(fired(out)) == {"streams_unassigned:capacity_free"}
    assert fired(out)["streams_unassigned:capacity_free"].severity is Severity.CRITICAL
    assert resolved(out) == {"streams_unassigned:no_capacity"}
    c.assign("s1", "w1")
    assert resolved(c.tick()) == {"streams_unassigned:capacity_free"}


def test_a_stream_placed_and_homeless_again_waits_anew() -> None:
    c = Cluster()
    c.register("w1")
    c.add(ev.StreamRegistered, stream_id="s1")
    c.tick(100)
    c.assign("s1", "w1")
    c.add(ev.StreamUnassigned, stream_id="s1", server_id="w1", reason="no_capacity")
    assert c.tick(30) == []  # 130 s since registered, but only 30 s waiting again
    assert c.manager.state.memory.unplaced_since["s1"] == T0 + timedelta(seconds=100)


def _fail_on(c: Cluster, stream: str, server: str, *, parked: bool = False) -> None:
    c.assign(stream, server)
    c.add(ev.StreamFailed, stream_id=stream, server_id=server, error="bad url", parked=parked)


def test_a_stream_parked_as_poison_fires_until_deregistered() -> None:
    c = Cluster()
    for w in ("w1", "w2"):
        c.register(w)
    c.add(ev.StreamRegistered, stream_id="s1")
    _fail_on(c, "s1", "w1")
    assert "poison_stream:s1" not in fired(c.tick())
    _fail_on(c, "s1", "w2", parked=True)
    alert = fired(c.tick())["poison_stream:s1"]
    assert dict(alert.evidence) == {
        "parked": True,
        "failed_on": ("w1", "w2"),
        "failure_count": 2,
        "last_error": "bad url",
    }
    c.add(ev.StreamDeregistered, stream_id="s1")
    assert resolved(c.tick()) == {"poison_stream:s1"}


def test_a_stream_failing_on_several_instances_fires_until_it_runs() -> None:
    c = Cluster()
    for w in ("w1", "w2", "w3", "w4"):
        c.register(w)
    c.add(ev.StreamRegistered, stream_id="s1")
    for w in ("w1", "w2", "w3"):
        _fail_on(c, "s1", w)
    assert "poison_stream:s1" in fired(c.tick())
    c.assign("s1", "w4")
    assert resolved(c.tick()) == {"poison_stream:s1"}


def test_the_mass_failure_guard_fires_until_maintenance_mode_is_left() -> None:
    c = Cluster()
    c.add(ev.MaintenanceModeEntered, reason="mass_failure", detail="5 of 6 silent")
    alert = fired(c.tick())["maintenance_mode:cluster"]
    assert alert.severity is Severity.CRITICAL and "mass-failure guard" in alert.summary
    c.add(ev.MaintenanceModeLeft, reason="operator")
    assert resolved(c.tick()) == {"maintenance_mode:cluster"}


def test_long_database_transactions() -> None:
    c = Cluster()
    assert c.tick(long_db_transactions=0) == []
    assert "long_db_transactions:cluster" in fired(c.tick(long_db_transactions=2))
    assert resolved(c.tick(long_db_transactions=0)) == {"long_db_transactions:cluster"}


def test_dead_letters_fire_when_the_counter_goes_up_and_resolve_when_it_stays() -> None:
    c = Cluster()
    assert c.tick(dead_letters_total=5) == []  # the first sample only sets the level
    assert c.tick(dead_letters_total=5) == []
    alert = fired(c.tick(dead_letters_total=7))["dead_letters:cluster"]
    assert dict(alert.evidence)["total"] == 7
    c.tick(CONFIG.dead_letter_window.total_seconds() - 10, dead_letters_total=7)
    assert resolved(c.tick(dead_letters_total=7)) == {"dead_letters:cluster"}
    assert "dead_letters:cluster" in fired(c.tick(dead_letters_total=2))  # reset, then new ones


def test_a_command_rejected_repeatedly_fires_per_command_type() -> None:
    c = Cluster()
    for i in range(3):
        c.add(
            ev.CommandRejected, command_id=f"c{i}", command_type="DrainInstance", reason="unknown"
        )
    c.add(ev.CommandRejected, command_id="x", command_type="AddStream", reason="duplicate")
    alert = fired(c.tick())["command_rejected:DrainInstance"]
    assert dict(alert.evidence)["count"] == 3 and dict(alert.evidence)["last_reason"] == "unknown"
    assert c.keys() == {"command_rejected:DrainInstance"}
    assert c.tick(CONFIG.reject_window.total_seconds() - 20) == []  # the first one is still in
    assert resolved(c.tick()) == {"command_rejected:DrainInstance"}
