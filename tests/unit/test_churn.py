"""Churn and downtime accounting (pure): seconds without a running owner, moves and why."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from events import ControlEvent
from events import control as ev
from projections.fold import apply
from projections.fold.churn import churn
from projections.fold.state import ClusterState
from tests.unit import test_audit
from tests.unit.fold_histories import FAST, histories
from tests.unit.test_audit import T0, Log

failover = test_audit.failover  # the fixture: a failover of camera-42 from w1 to w2

END = T0 + timedelta(hours=1)


def test_a_failover_costs_the_time_to_start_elsewhere_and_one_move(failover: Log) -> None:
    failed, started = failover.events[7], failover.events[-1]
    report = churn(failover.events, since=failed.time, until=END)
    cam = report.streams["camera-42"]
    assert cam.down_s == (started.time - failed.time).total_seconds() == 2.0
    assert (cam.moves, cam.outages) == (1, 1)
    assert report.moves_by_reason == {"instance_failed": 1} and report.streams_moved == 1
    # "other" never found a home: down for the whole window
    assert report.streams["other"].down_s == report.window_s


def test_before_the_window_counts_nothing_but_who_owned_what(failover: Log) -> None:
    whole = churn(failover.events, since=T0, until=END)
    cam = whole.streams["camera-42"]
    # registered at 4 s, running on w1 from 7 s, down from the failure at 8 s to 10 s
    assert cam.down_s == 3.0 + 2.0 and cam.outages == 2 and cam.longest_outage_s == 3.0
    late = churn(failover.events, since=failover.events[-1].time, until=END)
    assert late.moves == 0 and late.streams["camera-42"].down_s == 0


def test_a_failed_owner_s_streams_are_down_since_it_was_last_heard(failover: Log) -> None:
    events = list(failover.events)
    failed = events[7]  # InstanceFailed w1 at 8 s; say it was suspected, last heard at 7.5 s
    heard = failed.time - timedelta(seconds=0.5)
    suspected = ev.InstanceSuspected(
        id="sus", source="o", time=failed.time, seq=failed.seq, epoch=1, server_id="w1",
        incarnation="w1.1", last_heartbeat=heard,
    )  # fmt: skip
    renumbered = [e.model_copy(update={"seq": e.seq + 1}) for e in events[7:]]
    log = [*events[:7], suspected, *renumbered]
    cam = churn(log, since=T0, until=END).streams["camera-42"]
    assert cam.down_s == 3.0 + 2.5  # from 7.5 s, not from the failure at 8 s
    quiet = churn(log, since=T0, until=END, count_silence=False).streams["camera-42"]
    assert quiet.down_s == 3.0 + 2.0


def test_a_window_before_any_event_and_a_reversed_one() -> None:
    report = churn([], since=T0, until=END)
    assert (report.moves, report.unowned_stream_s, report.streams) == (0, 0, {})
    with pytest.raises(ValueError, match="before since"):
        churn([], since=END, until=T0)


def test_a_drain_moves_by_migration_with_its_reason() -> None:
    log = Log()
    log.add(ev.LeaderElected, leader_id="o")
    for w in ("w1", "w2"):
        log.add(
            ev.InstanceRegistered,
            server_id=w,
            incarnation=f"{w}.1",
            ip="10.0.0.1",
            port=1,
            max_streams=4,
        )
    log.add(ev.StreamRegistered, stream_id="s")
    log.add(
        ev.StreamAssigned, stream_id="s", server_id="w1", incarnation="w1.1", reason="new_stream"
    )
    log.add(ev.StreamStarted, stream_id="s", server_id="w1", incarnation="w1.1")
    log.add(
        ev.MigrationStarted, stream_id="s", migration_id="m1", from_server="w1", to_server="w2",
        to_incarnation="w2.1", deadline=END, reason="drain",
    )  # fmt: skip
    log.add(ev.MigrationCompleted, stream_id="s", migration_id="m1")
    report = churn(log.events, since=T0, until=END)
    assert report.moves_by_reason == {"drain": 1}
    # make-before-break: it ran throughout, down only before its first start
    assert report.streams["s"].down_s == 2.0


# --- properties over generated histories --------------------------------------------------


def _window(events: list[ControlEvent], a: float, b: float) -> tuple[object, object]:
    first, last = events[0].time, events[-1].time + timedelta(seconds=1)
    span = last - first
    lo, hi = sorted((a, b))
    return first + span * lo, first + span * hi


def _moves(events: list[ControlEvent], since: object, until: object) -> list[str]:
    """Independently: applied StreamAssigned/MigrationCompleted in the window whose stream
    was last assigned to another server."""
    state, last, out = ClusterState(), {}, []
    for e in events:
        before, state = state, apply(state, e)
        sid = getattr(e, "stream_id", None)
        if sid is None or before.streams.get(sid) is state.streams.get(sid):
            continue
        if isinstance(e, ev.StreamDeregistered):
            last.pop(sid, None)
            continue
        if isinstance(e, ev.StreamAssigned):
            to, why = e.server_id, e.reason
        elif isinstance(e, ev.MigrationCompleted):
            m = before.streams[sid].migration_state
            assert m is not None
            to, why = m.to_server, m.reason
        else:
            continue
        if last.get(sid) not in (None, to) and since <= e.time <= until:  # type: ignore[operator]
            out.append(why)
        last[sid] = to
    return out


@FAST
@given(histories(min_size=2), st.floats(0, 1), st.floats(0, 1))
def test_downtime_never_exceeds_the_window(events: list[ControlEvent], a: float, b: float) -> None:
    since, until = _window(events, a, b)
    report = churn(events, since=since, until=until)  # type: ignore[arg-type]
    for figures in report.streams.values():
        assert 0 <= figures.down_s <= report.window_s + 1e-9
        assert figures.longest_outage_s <= figures.down_s + 1e-9
    assert report.unowned_stream_s <= report.window_s * len(report.streams) + 1e-6


@FAST
@given(histories(min_size=2), st.floats(0, 1), st.floats(0, 1))
def test_moves_are_the_assignments_to_another_owner(
    events: list[ControlEvent], a: float, b: float
) -> None:
    since, until = _window(events, a, b)
    report = churn(events, since=since, until=until)  # type: ignore[arg-type]
    expected = _moves(events, since, until)
    assert report.moves == len(expected) == sum(s.moves for s in report.streams.values())
    assert report.moves_by_reason == {r: expected.count(r) for r in set(expected)}


@FAST
@given(histories(min_size=2), st.floats(0, 1), st.floats(0, 1))
def test_two_windows_add_up_to_their_union(events: list[ControlEvent], a: float, b: float) -> None:
    since, until = _window(events, 0, 1)
    cut = _window(events, a, a)[0]
    kw: dict[str, Any] = {"count_silence": False}
    whole = churn(events, since=since, until=until, **kw)
    left = churn(events, since=since, until=cut, **kw)
    right = churn(events, since=cut, until=until, **kw)
    assert whole.unowned_stream_s == pytest.approx(left.unowned_stream_s + right.unowned_stream_s)
    # the silence before a failure is seen only once the failure is: never less in the union
    silent = [
        churn(events, since=s, until=u) for s, u in ((since, until), (since, cut), (cut, until))
    ]
    assert (
        silent[0].unowned_stream_s >= silent[1].unowned_stream_s + silent[2].unowned_stream_s - 1e-6
    )
    assert silent[0].unowned_stream_s >= whole.unowned_stream_s - 1e-6
    # an event exactly at the cut is in both windows
    at_cut = len(_moves(events, cut, cut))
    assert whole.moves == left.moves + right.moves - at_cut
