"""The dashboard's data (control_plane.api.dashboard.view, .timeline): a snapshot followed by
its deltas, merged as the page merges them, equals the snapshot taken at the end, for any
cut of a generated history into batches; the timeline counts what it says it counts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.api.dashboard.settings import DashboardSettings
from control_plane.api.dashboard.timeline import Timeline
from control_plane.api.dashboard.view import (
    _SENTENCES,
    STATUSES,
    DashboardView,
    describe,
    event_view,
)
from events import control as ev
from events.base import ControlEvent
from projections.fold import fold, fold_from
from projections.testing.synthetic import generate_history

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SETTINGS = DashboardSettings(feed_size=50, timeline_bucket=5.0, timeline_points=1000)


def _page_merge(page: dict[str, Any], delta: dict[str, Any]) -> None:
    """What dashboard.js does with a delta: replace the header, replace or drop keys."""
    for key in ("seq", "epoch", "leader", "maintenance", "counts"):
        page[key] = delta[key]
    for part in ("instances", "streams"):
        for k, v in delta[part].items():
            if v is None:
                page[part].pop(k, None)
            else:
                page[part][k] = v
    page["feed"] = (page["feed"] + delta["events"])[-SETTINGS.feed_size :]
    timeline = {b["t"]: b for b in page["timeline"]}
    timeline.update({b["t"]: b for b in delta["timeline"]})
    page["timeline"] = [timeline[t] for t in sorted(timeline)]


def _cut(events: list[ControlEvent], cuts: list[int]) -> list[list[ControlEvent]]:
    points = sorted({0, len(events), *(c % (len(events) + 1) for c in cuts)})
    return [events[a:b] for a, b in itertools.pairwise(points) if b > a]


def _comparable(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot through JSON (what the wire carries), without the health summary."""
    plain = orjson.loads(orjson.dumps(snapshot))
    plain.pop("health")
    plain.pop("kind")
    return plain


@settings(max_examples=25, deadline=None, database=None)
@given(
    n=st.integers(1, 500),
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_snapshot_then_deltas_equals_the_final_snapshot(n: int, seed: int, cuts: list[int]) -> None:
    events = generate_history(n, seed=seed, instances=5, streams=30)
    view = DashboardView(SETTINGS)
    page = _comparable(view.snapshot({}))
    state = view.state
    for batch in _cut(events, cuts):
        state = fold_from(state, batch)
        delta = orjson.loads(orjson.dumps(view.advance(state, batch, with_health=False)))
        assert delta["kind"] == "delta" and [e["seq"] for e in delta["events"]] == [
            e.seq for e in batch
        ]
        _page_merge(page, delta)
    final = DashboardView(SETTINGS, fold(events))
    expected = _comparable(final.snapshot({}))
    for key in ("seq", "epoch", "leader", "maintenance", "instances", "streams", "counts"):
        assert page[key] == expected[key], key
    # the counts kept by deltas are the counts of the state
    counted = dict.fromkeys(STATUSES, 0)
    for s in state.streams.values():
        counted[s.status.value] += 1
    assert page["counts"] == counted
    assert [e["seq"] for e in page["feed"]] == [e.seq for e in events][-SETTINGS.feed_size :]
    assert page["timeline"] == view.snapshot({})["timeline"]


def test_a_delta_names_exactly_what_changed() -> None:
    events = generate_history(300, seed=7, instances=4, streams=20)
    view = DashboardView(SETTINGS, fold(events[:-1]))
    before = view.state
    after = fold_from(before, events[-1:])
    delta = view.advance(after, events[-1:], with_health=True)
    changed_streams = {k for k in set(before.streams) | set(after.streams)
                       if before.streams.get(k) is not after.streams.get(k)}  # fmt: skip
    assert set(delta["streams"]) == changed_streams
    assert delta["health"]["status"] in ("healthy", "degraded", "critical")


def test_every_control_event_has_a_plain_sentence() -> None:
    missing = [t.__name__ for t in ev.CONTROL_EVENT_TYPES if t not in _SENTENCES]
    assert not missing, f"no feed sentence for {missing}"
    for event in generate_history(400, seed=3, instances=4, streams=20):
        text = describe(event)
        assert text and text != type(event).__name__
        line = event_view(event)
        assert line["text"] == text and line["seq"] == event.seq


def _failed(seq: int, at: datetime, server: str = "w1") -> ev.InstanceFailed:
    return ev.InstanceFailed(
        id=f"e{seq}", source="t", time=at, seq=seq, epoch=1, server_id=server, incarnation="i"
    )


def _plan(seq: int, at: datetime, *, dry_run: bool) -> ev.RebalancePlanned:
    return ev.RebalancePlanned(
        id=f"e{seq}", source="t", time=at, seq=seq, epoch=1, plan_id=f"p{seq}", dry_run=dry_run
    )


def test_timeline_buckets_count_failovers_and_rebalances_by_log_time() -> None:
    tl = Timeline(bucket=5.0, points=10)
    counts = {"running": 3}
    changed = tl.record(
        [_failed(1, T0), _plan(2, T0 + timedelta(seconds=1), dry_run=True),
         _plan(3, T0 + timedelta(seconds=6), dry_run=False)],
        counts,
    )  # fmt: skip
    start = int(T0.timestamp() * 1000)
    assert [(b["t"], b["failovers"], b["rebalances"]) for b in changed] == [
        (start, 1, 0),
        (start + 5000, 0, 1),
    ]
    # the counts belong to the bucket of the batch's last event
    assert changed[0]["streams"] is None and changed[1]["streams"] == counts
    assert tl.view() == changed


def test_timeline_keeps_the_last_points_buckets() -> None:
    tl = Timeline(bucket=1.0, points=3)
    for i in range(6):
        tl.record([_failed(i + 1, T0 + timedelta(seconds=i))], {"running": i})
    kept = tl.view()
    assert [b["streams"]["running"] for b in kept] == [3, 4, 5]
    # an event older than every bucket kept is not drawn (nor does it evict a newer one)
    assert tl.record([_failed(9, T0)], {"running": 9}) == []
    assert [b["streams"]["running"] for b in tl.view()] == [3, 4, 5]


def test_timeline_sorts_an_event_older_than_the_newest_bucket() -> None:
    tl = Timeline(bucket=1.0, points=10)
    tl.record([_failed(1, T0 + timedelta(seconds=5))], {"running": 1})
    tl.record([_failed(2, T0 + timedelta(seconds=2))], {"running": 2})
    assert [b["t"] for b in tl.view()] == sorted(b["t"] for b in tl.view())


def _assigned(
    seq: int, at: datetime, stream: str, reason: str, server: str = "w2"
) -> ev.StreamAssigned:
    return ev.StreamAssigned(
        id=f"e{seq}", source="t", time=at, seq=seq, epoch=1, stream_id=stream,
        server_id=server, incarnation=f"{server}.i", reason=reason,
    )  # fmt: skip


def _migration(seq: int, at: datetime, stream: str, done: bool) -> ControlEvent:
    common = {"id": f"e{seq}", "source": "t", "time": at, "seq": seq, "epoch": 1}
    if not done:
        return ev.MigrationStarted(
            **common, stream_id=stream, migration_id="m1", from_server="w2", to_server="w3",
            to_incarnation="w3.i", deadline=at + timedelta(seconds=30), reason="rebalance",
        )  # fmt: skip
    return ev.MigrationCompleted(**common, stream_id=stream, migration_id="m1")


def test_timeline_counts_moves_by_reason_and_stream_seconds_without_an_owner() -> None:
    # s1 and s2 ran on w1 when the page's state was taken
    tl = Timeline(bucket=5.0, points=10, owners={"s1": "w1", "s2": "w1"})
    start = int(T0.timestamp() * 1000)
    # w1 fails and its two streams wait (down) from t=0 ...
    tl.record([_failed(1, T0)], {"running": 1, "unassigned": 2})
    # ... until 3 s later both are placed on w2: 2 streams x 3 s without an owner; s3 is new
    at = T0 + timedelta(seconds=3)
    [b] = tl.record(
        [_assigned(2, at, "s1", "instance_failed"), _assigned(3, at, "s2", "capacity_returned"),
         _assigned(4, at, "s3", "new_stream")],
        {"running": 3},
    )  # fmt: skip
    assert (b["t"], b["moves"], b["reasons"], b["down_s"]) == (
        start, 2, {"instance_failed": 1, "capacity_returned": 1}, 6.0
    )  # fmt: skip
    # nothing is down any more; a migration is a move when it completes, with its reason
    later = T0 + timedelta(seconds=12)
    [c] = tl.record([_migration(5, later, "s1", done=False)], {"running": 3})
    assert (c["t"], c["moves"], c["down_s"]) == (start + 10_000, 0, 0.0)
    [c] = tl.record([_migration(6, later, "s1", done=True)], {"running": 3})
    assert (c["moves"], c["reasons"]) == (1, {"rebalance": 1})
    # placed again on the server it was on: not a move
    [d] = tl.record([_assigned(7, later, "s3", "orphaned")], {"running": 3})
    assert d["moves"] == 1
    # the buckets handed out are copies: changing one changes nothing kept
    b["reasons"]["instance_failed"] = 99
    assert tl.view()[0]["reasons"] == {"instance_failed": 1, "capacity_returned": 1}
