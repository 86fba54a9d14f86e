"""The engine (control_plane.alerts.engine): de-duplication, hysteresis, rate limit, the firing
view, and bad input. Conditions come from the ``long_db_transactions`` metric (and the
maintenance flag), so each test reads as a series of samples."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.alerts import (
    Alert,
    AlertConfig,
    AlertManager,
    AlertStatus,
    EngineState,
    InvalidConfig,
    InvalidInput,
    Observation,
    SignalSpec,
    evaluate,
    firing,
)
from events.control import CommandRejected
from projections.fold.state import ClusterState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "long_db_transactions:cluster"
EMPTY = ClusterState()


def obs(tx: float | None = None, state: ClusterState = EMPTY) -> Observation:
    return Observation(state, (), {} if tx is None else {"long_db_transactions": tx})


def run(
    config: AlertConfig, samples: list[tuple[float, float]], engine: EngineState | None = None
) -> tuple[EngineState, list[Alert]]:
    """Evaluate ``(seconds after T0, long transactions)`` samples in order."""
    engine = engine or EngineState()
    out: list[Alert] = []
    for at, tx in samples:
        engine, sent = evaluate(engine, obs(tx), now=T0 + timedelta(seconds=at), config=config)
        out.extend(sent)
    return engine, out


def test_the_same_observation_twice_gives_no_second_transition() -> None:
    manager = AlertManager()
    manager, first = manager.evaluate(obs(2), now=T0)
    again, second = manager.evaluate(obs(2), now=T0 + timedelta(seconds=10))
    assert [a.status for a in first] == [AlertStatus.FIRING] and second == ()
    assert [a.key for a in again.firing()] == [KEY]


def test_repeated_events_are_counted_once() -> None:
    rejected = tuple(
        CommandRejected(
            id=f"e{i}",
            source="test",
            time=T0,
            seq=i,
            epoch=1,
            command_id=f"c{i}",
            command_type="DrainInstance",
            reason="unknown",
        )
        for i in (1, 2, 3)
    )
    manager = AlertManager()
    for _ in range(3):  # two rejections seen three times are still two: below reject_count
        manager, out = manager.evaluate(Observation(EMPTY, rejected[:2]), now=T0)
        assert out == ()
    manager, out = manager.evaluate(Observation(EMPTY, rejected), now=T0)
    assert [a.key for a in out] == ["command_rejected:DrainInstance"]


def test_a_firing_alert_shows_its_newest_evidence_without_a_new_transition() -> None:
    engine, out = run(AlertConfig(), [(0, 1), (10, 3)])
    assert len(out) == 1 and dict(out[0].evidence)["count"] == 1
    (alert,) = firing(engine)
    assert dict(alert.evidence)["count"] == 3 and alert.at == T0  # still the firing transition


def test_a_condition_must_stay_clear_for_resolve_after_before_it_resolves() -> None:
    config = AlertConfig(resolve_after=timedelta(seconds=60))
    _, out = run(config, [(0, 1), (10, 0), (20, 1), (30, 0), (80, 0)])
    assert [a.status for a in out] == [AlertStatus.FIRING]  # the blink at 10 s did not resolve
    _, out = run(config, [(0, 1), (10, 0), (20, 1), (30, 0), (80, 0), (90, 0)])
    assert [(a.status, a.at) for a in out][-1] == (AlertStatus.RESOLVED, T0 + timedelta(seconds=90))


LIMITED = AlertConfig(resolve_after=timedelta(0), rate_max=2, rate_window=timedelta(minutes=5))


def test_the_rate_limit_holds_transitions_back_and_reports_them_later() -> None:
    engine, out = run(LIMITED, [(0, 1), (10, 0), (20, 1), (30, 0), (40, 1)])
    assert [a.status for a in out] == [AlertStatus.FIRING, AlertStatus.RESOLVED]
    assert firing(engine) == ()  # the held-back firing is not shown as firing
    assert engine.held[KEY].changes == 3
    engine, out = run(LIMITED, [(300, 1)], engine)  # the first transition left the window
    assert [(a.status, a.held_back) for a in out] == [(AlertStatus.FIRING, 2)]
    assert len(engine.held) == 0


def test_a_held_back_burst_that_nets_out_to_nothing_is_forgotten() -> None:
    engine, out = run(LIMITED, [(0, 1), (10, 0), (20, 1), (30, 0), (400, 0)])
    assert len(out) == 2 and len(engine.held) == len(engine.sent) == 0


@settings(max_examples=150, deadline=None, database=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 120), st.booleans()), max_size=60),
    resolve_after=st.integers(0, 90),
    rate_max=st.integers(1, 4),
)
def test_transitions_alternate_respect_the_rate_limit_and_converge(
    steps: list[tuple[int, bool]], resolve_after: int, rate_max: int
) -> None:
    window = timedelta(minutes=5)
    config = AlertConfig(
        resolve_after=timedelta(seconds=resolve_after), rate_max=rate_max, rate_window=window
    )
    at, samples = 0, []
    for gap, on in steps:
        at += gap
        samples.append((at, 1.0 if on else 0.0))
    last = samples[-1][1] if samples else 0.0
    quiet = [(at + 400 + 100 * i, last) for i in range(3)]  # the window empties; stable
    engine, out = run(config, samples + quiet)
    statuses = [a.status for a in out]
    assert statuses == [AlertStatus.FIRING, AlertStatus.RESOLVED] * (len(out) // 2) + (
        [AlertStatus.FIRING] if len(out) % 2 else []
    )
    for a in out:
        assert sum(1 for b in out if a.at - window < b.at <= a.at) <= rate_max
    assert bool(firing(engine)) == (last > 0)


def test_firing_lists_the_worst_first_and_alerts_serialise_to_json() -> None:
    state = replace(EMPTY, maintenance=True, maintenance_reason="operator")
    manager, out = AlertManager().evaluate(obs(1, state), now=T0)
    assert [a.key for a in manager.firing()] == ["maintenance_mode:cluster", KEY]
    doc = json.loads(json.dumps(out[0].to_json()))
    assert doc["status"] == "firing" and doc["at"] == T0.isoformat()
    assert {doc["rule"], doc["subject"]} <= {"maintenance_mode", "long_db_transactions", "cluster"}


def test_the_manager_is_a_value() -> None:
    manager = AlertManager()
    manager.evaluate(obs(1), now=T0)
    assert manager.firing() == () and manager.state == EngineState()


def test_bad_input_is_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidInput, match="timezone"):
        evaluate(EngineState(), obs(1), now=datetime(2026, 1, 1), config=AlertConfig())
    with pytest.raises(InvalidInput, match="long_db_transactions"):
        evaluate(EngineState(), obs(math.inf), now=T0, config=AlertConfig())
    with pytest.raises(InvalidConfig, match="flap_count"):
        AlertConfig(flap_count=0)
    spec = SignalSpec("x", "x_high", "x", "look at x")
    with pytest.raises(InvalidConfig, match="twice"):
        AlertConfig(signals=(spec, spec))
