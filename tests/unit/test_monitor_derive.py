"""The monitor's pure signal arithmetic (control_plane.monitor.derive, sources.signals_of,
metrics.samples): quantiles, failovers per minute, offsets turned into seq lag, the events
the engine reads, and what a ``/metrics`` scrape gives."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.alerts import Alert, AlertConfig, AlertStatus, Observation, Severity
from control_plane.alerts.memory import Memory, remember
from control_plane.monitor.derive import FailoverWindow, SeqIndex, quantile, remembered
from control_plane.monitor.metrics import Seen, samples
from control_plane.monitor.sources import signals_of
from events.control import InstanceFailed, LeaderElected
from projections.fold import fold
from projections.testing.synthetic import generate_history

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def failed(at: float, server: str = "w-1") -> InstanceFailed:
    return InstanceFailed(
        id=f"f-{at}-{server}",
        source="t",
        time=T0 + timedelta(seconds=at),
        seq=1,
        epoch=1,
        server_id=server,
        incarnation=f"{server}.i",
    )


# --- quantile ---------------------------------------------------------------------------


def test_quantile_is_a_value_seen() -> None:
    assert quantile([], 0.9) is None
    assert quantile([0.2], 0.9) == 0.2
    assert quantile([5.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9], 0.9) == 0.9
    assert quantile([1.0, 2.0, 3.0], 1.0) == 3.0


@given(st.lists(st.floats(0, 1e6), min_size=1), st.floats(0.01, 1))
def test_quantile_lies_within_the_samples(xs: list[float], q: float) -> None:
    value = quantile(xs, q)
    assert value in xs
    assert sum(x <= value for x in xs) >= q * len(xs)  # type: ignore[operator]


# --- failovers per minute -----------------------------------------------------------------


def test_failover_rate_counts_the_window_only() -> None:
    window = FailoverWindow(timedelta(minutes=5))
    window.observe([failed(0), failed(10, "w-2"), failed(200, "w-3")])
    window.observe([LeaderElected(id="l", source="t", time=T0, seq=2, epoch=1, leader_id="o")])
    assert window.rate(T0 + timedelta(seconds=250)) == pytest.approx(3 / 5)
    assert window.rate(T0 + timedelta(seconds=305)) == pytest.approx(2 / 5)
    assert window.rate(T0 + timedelta(seconds=600)) == 0.0


# --- offsets to seq lag -----------------------------------------------------------------


def test_seq_index_turns_an_offset_into_a_seq_lag() -> None:
    index = SeqIndex(16)
    assert index.lag(0, 0) is None
    index.note(0, 0)
    index.note(10, 8)  # 10 records (2 of them commit markers, the last at 9) fold to seq 8
    index.note(25, 20)
    assert index.lag(25, 20) == 0
    assert index.lag(24, 20) == 0  # read every event, committed the marker's offset
    assert index.lag(10, 20) == 12
    assert index.lag(12, 20) == 12  # between two positions: at most one poll too many
    assert index.lag(0, 20) == 20
    assert index.lag(99, 20) == 0


def test_seq_index_keeps_the_earliest_position_of_a_seq() -> None:
    index = SeqIndex(4)
    index.note(0, 0)
    index.note(5, 4)
    index.note(6, 4)  # a commit marker only
    assert index.lag(6, 4) == 0 and index.lag(5, 4) == 0 and index.lag(4, 4) == 0


#: a poll of the follower: transactions of (events, then one commit marker)
polls = st.lists(st.lists(st.integers(1, 4), min_size=1, max_size=3), min_size=1, max_size=200)


@settings(max_examples=200, deadline=None)
@given(polls)
def test_seq_index_is_bounded_and_never_underestimates(reads: list[list[int]]) -> None:
    index = SeqIndex(8)
    events_before = [0]  # events_before[o]: events at offsets below o
    index.note(0, 0)
    for transactions in reads:
        for events in transactions:
            for _ in range(events):
                events_before.append(events_before[-1] + 1)
            events_before.append(events_before[-1])  # the commit marker
        index.note(len(events_before) - 1, events_before[-1])
    seq = events_before[-1]
    assert len(index._positions) <= 9
    for offset, seq_then in enumerate(events_before):
        lag = index.lag(offset, seq)
        assert lag is not None and seq - seq_then <= lag <= seq


def test_a_seq_index_needs_room() -> None:
    with pytest.raises(ValueError, match="monitor_seq_index"):
        SeqIndex(1)


# --- the events the engine reads ----------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_leaving_out_the_events_the_engine_ignores_changes_nothing(seed: int) -> None:
    history = generate_history(3000, seed=seed)
    state = fold(history)
    now = history[-1].time + timedelta(seconds=1)
    config = AlertConfig()
    whole = remember(Memory(), Observation(state, tuple(history)), now=now, config=config)
    kept = remembered(history)
    assert len(kept) < len(history)
    part = remember(Memory(), Observation(state, tuple(kept)), now=now, config=config)
    assert part._replace(last_seq=0) == whole._replace(last_seq=0)
    assert part.drops or part.rejections or part.unplaced_since  # the check saw something


# --- scraping -----------------------------------------------------------------------------

EXPOSITION = """\
# HELP streamplane_read_model_applied_seq Seq of the last event in the tables.
# TYPE streamplane_read_model_applied_seq gauge
streamplane_read_model_applied_seq 60
# HELP streamplane_projector_applied_seq Seq of the last control event folded.
# TYPE streamplane_projector_applied_seq gauge
streamplane_projector_applied_seq 90
# HELP streamplane_dead_letters_total Records dead-lettered.
# TYPE streamplane_dead_letters_total counter
streamplane_dead_letters_total{origin="heartbeats"} 2
streamplane_dead_letters_total{origin="events"} 1
# HELP other_metric Not ours.
# TYPE other_metric gauge
other_metric 7
"""


def test_a_scrape_gives_the_signals_it_knows() -> None:
    slower = EXPOSITION.replace("applied_seq 60", "applied_seq 40")
    got = signals_of([EXPOSITION, slower], 100)
    assert got == {
        "read_model_lag_seq": 60.0,
        "projection_lag_seq": 10.0,
        "dead_letters_total": 6.0,
    }
    assert signals_of([EXPOSITION], 50)["projection_lag_seq"] == 0.0  # a head behind: no lag
    assert signals_of([], 100) == {}


# --- the monitor's own metrics --------------------------------------------------------------


def test_metrics_count_firing_alerts_by_rule_and_severity() -> None:
    def alert(key: str, severity: Severity) -> Alert:
        return Alert(key, severity, "s", (), "a", 1, AlertStatus.FIRING, T0)

    seen = Seen(
        (
            alert("zone_failures:z1", Severity.CRITICAL),
            alert("zone_failures:z2", Severity.CRITICAL),
            alert("dead_letters:cluster", Severity.WARNING),
        ),
        {"read_model_lag_seq": 4.0},
        Counter({"delivered": 3, "failed": 1}),
        2,
    )
    values = samples(seen)
    assert values["streamplane_alerts_firing"] == {
        ("zone_failures", "critical"): 2.0,
        ("dead_letters", "warning"): 1.0,
    }
    assert values["streamplane_monitor_signal"] == {("read_model_lag_seq",): 4.0}
    assert values["streamplane_webhook_deliveries"] == {("delivered",): 3.0, ("failed",): 1.0}
    assert values["streamplane_webhook_queued"] == 2.0
