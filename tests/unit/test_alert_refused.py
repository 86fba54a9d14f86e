"""The ``heartbeat_refused`` rule: one alert per claimed server id however many of its
heartbeats are refused, resolved once none was refused within the window; and the monitor
reads the refusals from the very dead letters the orchestrator's gate writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from control_plane.alerts import AlertConfig, AlertManager, AlertStatus, Observation, Severity
from control_plane.alerts.model import Refusal
from control_plane.monitor.refusals import refusal_of
from control_plane.orchestrator.enrollment import REASONS, HeartbeatGate
from events.codec import encode
from events.errors import UnauthenticatedError
from events.heartbeat import Heartbeat
from projections.fold.state import ClusterState
from projections.io.dlq import make_dead_letter

T0 = datetime(2026, 12, 3, tzinfo=UTC)
CONFIG = AlertConfig(resolve_after=timedelta(0), refused_window=timedelta(minutes=5))


class Manager:
    def __init__(self, config: AlertConfig = CONFIG) -> None:
        self.manager, self.now = AlertManager(config), T0

    def tick(self, *refused: tuple[str, str], after: float = 1.0) -> list[Any]:
        self.now += timedelta(seconds=after)
        obs = Observation(
            ClusterState(), refused=tuple(Refusal(s, r, self.now) for s, r in refused)
        )
        self.manager, out = self.manager.evaluate(obs, now=self.now)
        return list(out)


def test_one_alert_per_source_however_many_refusals() -> None:
    m = Manager()
    out = m.tick(("w1", "wrong_key"), ("w1", "wrong_key"), ("w3", "unenrolled"))
    assert {(a.key, a.status, a.severity) for a in out} == {
        ("heartbeat_refused:w1", AlertStatus.FIRING, Severity.CRITICAL),
        ("heartbeat_refused:w3", AlertStatus.FIRING, Severity.WARNING),
    }
    w1 = next(a for a in out if a.key == "heartbeat_refused:w1")
    assert dict(w1.evidence)["count"] == 2 and "w1" in w1.summary
    for _ in range(5):  # still refused: no second alert
        assert m.tick(("w1", "bad_signature"), ("w3", "unenrolled")) == []
    resolved = m.tick(after=5 * 60 + 1)
    assert {(a.key, a.status) for a in resolved} == {
        ("heartbeat_refused:w1", AlertStatus.RESOLVED),
        ("heartbeat_refused:w3", AlertStatus.RESOLVED),
    }


def test_a_spray_of_ids_makes_bounded_alerts() -> None:
    m = Manager(AlertConfig(resolve_after=timedelta(0), refused_sources_max=3))
    out = m.tick(*((f"x{i}", "unenrolled") for i in range(50)))
    assert len(out) == 3


def test_the_monitor_reads_the_gate_s_dead_letters() -> None:
    hb = Heartbeat(
        id="h1", source="w", time=T0, server_id="w-1.a:b", incarnation="i", ip="127.0.0.1",
        port=8000, max_streams=1,
    )  # fmt: skip
    gate = HeartbeatGate(open_enrollment=False, max_age=timedelta(seconds=60))

    class Record:
        topic, partition, offset, key, timestamp = "p.heartbeats", 0, 7, b"w-1.a:b", 0
        value, headers = encode(hb), None

    try:
        gate.check(Record, hb, ClusterState().enrolled, T0)
    except UnauthenticatedError as exc:
        error = exc
    letter = make_dead_letter(
        topic=Record.topic, partition=0, offset=7, key=Record.key, value=Record.value,
        error=error, now=T0, timestamp_ms=0,
    )  # fmt: skip
    assert refusal_of(letter) == Refusal("w-1.a:b", "unenrolled", T0)
    assert error.reason in REASONS
