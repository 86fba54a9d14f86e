"""projections.fold.drift: projections compared with the fold at their own as-of point; lag is
reported, not called drift; a corrupted row or record is found by key; repairs converge."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from events import control as ev
from events.base import ControlEvent
from projections.fold import apply, fold, fold_until
from projections.fold.assignments import assignment_updates, changes
from projections.fold.drift import (
    DRIFT_REPAIR_REASON,
    PROJECTION_DRIFT,
    Projection,
    ReadModelRows,
    Tail,
    assignment_repairs,
    compare_assignments,
    compare_instances,
    compare_read_model,
    fold_tail,
    instance_values_after,
    latest_assignments,
)
from projections.fold.rows import instance_row, stream_row
from projections.fold.state import ClusterState
from projections.testing.synthetic import generate_history

STREAM_COLS = (
    "stream_id", "server_id", "incarnation", "status", "weight", "priority", "assigned_at",
    "migration", "reason", "data", "as_of_seq",
)  # fmt: skip
INSTANCE_COLS = (
    "server_id", "incarnation", "status", "draining", "max_streams", "current_streams", "load",
    "zone", "last_heartbeat", "data", "as_of_seq",
)  # fmt: skip
Record = tuple[bytes | None, bytes | None]


@pytest.fixture(scope="module")
def history() -> list[ControlEvent]:
    return generate_history(1500, seed=5, instances=6, streams=40)


def rows_of(state: ClusterState) -> ReadModelRows:
    """What ReadModelProjector writes for ``state`` (its own row builders)."""
    streams = [
        dict(zip(STREAM_COLS, stream_row(s, "why", state.seq), strict=True))
        for s in state.streams.values()
    ]
    instances = [
        dict(zip(INSTANCE_COLS, instance_row(i, state.seq), strict=True))
        for i in state.instances.values()
    ]
    cluster = {
        "seq": state.seq,
        "epoch": state.epoch,
        "leader_id": state.leader_id,
        "maintenance": state.maintenance,
        "finding_count": state.finding_count,
    }
    return ReadModelRows(state.seq, state.seq, streams, instances, cluster, dict(state.in_flight))


def projected(events: list[ControlEvent]) -> list[Record]:
    """The records a projector publishes to the assignments topic for ``events``."""
    state, out = ClusterState(), []
    for event in events:
        before, state = state, apply(state, event)
        for u in assignment_updates(state, event, changes(before, state, event).streams):
            out.append((u.key.encode(), None if u.value is None else orjson.dumps(u.value)))
    return out


def check(events: list[ControlEvent], records: list[Record]) -> Any:
    view = latest_assignments(records)
    at, n = fold_until(ClusterState(), events, seq=view.as_of_seq)
    tail = fold_tail(Tail(at), events[n:])
    return compare_assignments(at, tail, view), at, view


# --- the read model ---------------------------------------------------------------------


def test_a_faithful_read_model_has_no_drift(history: list[ControlEvent]) -> None:
    state = fold(history)
    report = compare_read_model(state, rows_of(state), head_seq=state.seq, lag=0)
    assert report.clean and report.as_of_seq == state.seq
    assert report.checked >= len(state.streams) + len(state.instances)


def test_a_lagging_read_model_is_not_drift(history: list[ControlEvent]) -> None:
    behind = fold(history[:900])
    head = fold(history)
    report = compare_read_model(behind, rows_of(behind), head_seq=head.seq, lag=600)
    assert report.clean
    assert (report.as_of_seq, report.head_seq, report.lag) == (900, 1500, 600)
    # compared with the head instead, the same rows would look drifted: hence the as-of fold
    assert not compare_read_model(head, rows_of(behind), head_seq=head.seq, lag=0).clean


def test_a_corrupted_stream_row_is_found_by_key(history: list[ControlEvent]) -> None:
    state = fold(history)
    rows = rows_of(state)
    victim = sorted(state.streams)[3]
    streams = [dict(r, status="bogus") if r["stream_id"] == victim else r for r in rows.streams]
    report = compare_read_model(state, rows._replace(streams=streams), head_seq=state.seq, lag=0)
    (drift,) = report.drifts
    assert (drift.kind, drift.projection, drift.table, drift.key) == (
        PROJECTION_DRIFT,
        Projection.READ_MODEL,
        "streams",
        victim,
    )
    assert drift.fields == ("status",) and drift.found["status"] == "bogus"
    assert drift.expected["status"] == state.streams[victim].status.value
    assert drift.as_of_seq == state.seq


def test_missing_extra_and_miscounted_rows(history: list[ControlEvent]) -> None:
    state = fold(history)
    rows = rows_of(state)
    gone = rows.streams[0]["stream_id"]
    ghost = dict(rows.streams[1], stream_id="ghost-1")
    server = rows.instances[0]["server_id"]
    instances = [dict(r, load=r["load"] + 1) if r["server_id"] == server else r
                 for r in rows.instances]  # fmt: skip
    bad = rows._replace(streams=[*rows.streams[1:], ghost], instances=instances, last_seq=7)
    report = compare_read_model(state, bad, head_seq=state.seq, lag=0)
    found = {(d.table, d.key): d for d in report.drifts}
    assert set(found) == {
        ("streams", gone),
        ("streams", "ghost-1"),
        ("instances", server),
        ("projection_tracking", "last_seq"),
    }
    assert found[("streams", gone)].found is None
    assert found[("streams", "ghost-1")].expected is None
    assert "load" in found[("instances", server)].fields


def test_reason_and_as_of_seq_are_bookkeeping_not_drift(history: list[ControlEvent]) -> None:
    state = fold(history)
    rows = rows_of(state)
    streams = [dict(r, reason="other", as_of_seq=1) for r in rows.streams]
    report = compare_read_model(state, rows._replace(streams=streams), head_seq=state.seq, lag=0)
    assert report.clean


# --- the assignments topic --------------------------------------------------------------


def test_fold_until_a_seq_splits_the_log(history: list[ControlEvent]) -> None:
    state, n = fold_until(ClusterState(), history, seq=700)
    assert (n, state) == (700, fold(history[:700]))
    tail = fold_tail(fold_tail(Tail(state), history[700:1000]), history[1000:])
    assert tail.state == fold(history)
    assert tail.changed  # streams changed after seq 700


def test_a_faithful_topic_is_clean_and_up_to_date(history: list[ControlEvent]) -> None:
    report, _, view = check(history, projected(history))
    assert report.clean and report.lag == 0
    assert report.head_seq == fold(history).seq
    assert report.checked == len(view.latest)


def test_a_lagging_topic_is_not_drift(history: list[ControlEvent]) -> None:
    report, _, view = check(history, projected(history[:1000]))
    assert report.clean
    assert report.as_of_seq == view.as_of_seq <= 1000 and report.head_seq == 1500
    assert report.lag > 0  # streams changed after seq 1000 are not published yet


def test_a_tombstone_published_last_is_not_drift(history: list[ControlEvent]) -> None:
    """A deregistration's tombstone has no as_of_seq: the view's as-of lies before it."""
    cut = next(i for i, e in enumerate(history) if isinstance(e, ev.StreamDeregistered))
    events = history[: cut + 1]
    report, at, view = check(events, projected(events))
    assert view.as_of_seq < events[-1].seq
    assert events[-1].stream_id in at.streams  # type: ignore[attr-defined]
    assert report.clean and report.lag == 0


def test_a_wrong_record_is_found_and_repaired(history: list[ControlEvent]) -> None:
    records = projected(history[:1200])
    state = fold(history[:1200])
    victim = next(s for s in sorted(state.streams) if state.streams[s].server_id is not None)
    wrong = dict(orjson.loads(dict(records)[victim.encode()] or b"{}"), server_id="elsewhere")
    wrong["as_of_seq"] = 1  # an old-looking record does not move the as-of point
    records.append((victim.encode(), orjson.dumps(wrong)))
    records.append((b"never-registered", orjson.dumps({**wrong, "stream_id": "never"})))
    records.append((b"garbage", b"not json"))
    report, at, _ = check(history, records)
    found = {d.key: d for d in report.drifts}
    assert set(found) == {victim, "never-registered", "garbage"}
    assert found[victim].fields == ("server_id",)
    assert found[victim].found["server_id"] == "elsewhere"
    assert found["garbage"].found == {"undecodable": "not json"}

    repairs = assignment_repairs(at, report)
    assert {u.key for u in repairs} == set(found)
    fixed = {u.key: u.value for u in repairs}
    assert fixed["never-registered"] is None and fixed["garbage"] is None  # tombstones
    assert fixed[victim] is not None and fixed[victim]["reason"] == DRIFT_REPAIR_REASON
    records += [(u.key.encode(), None if u.value is None else orjson.dumps(u.value))
                for u in repairs]  # fmt: skip
    after, _, _ = check(history, records)
    # the repaired record shows ``at``'s value: lag once more if the tail changed the victim
    moved_later = victim in fold_tail(Tail(at), history[at.seq :]).changed
    assert after.clean and after.lag == report.lag + moved_later


def test_a_missing_record_is_drift_when_the_projector_is_past_it(
    history: list[ControlEvent],
) -> None:
    records = projected(history)
    state = fold(history)
    victim = sorted(state.streams)[0]
    kept = [r for r in records if r[0] != victim.encode()]
    report, _, _ = check(history, kept)
    assert [(d.key, d.found) for d in report.drifts] == [(victim, None)]


def test_the_faust_table_is_compared_like_the_topic_and_named_as_itself(
    history: list[ControlEvent],
) -> None:
    records = projected(history)
    view = latest_assignments(records)
    at, n = fold_until(ClusterState(), history, seq=view.as_of_seq)
    tail = fold_tail(Tail(at), history[n:])
    assert compare_assignments(at, tail, view, Projection.FAUST_TABLES).clean
    victim = sorted(k for k, v in view.latest.items() if v is not None)[0]
    dropped = latest_assignments([*records, (victim.encode(), None)])
    report = compare_assignments(at, tail, dropped, Projection.FAUST_TABLES)
    (drift,) = report.drifts
    assert report.projection is Projection.FAUST_TABLES
    assert (drift.projection, drift.table, drift.key) == (
        Projection.FAUST_TABLES,
        "assignments",
        victim,
    )


def test_faust_changelog_keys_are_json_strings() -> None:
    from control_plane.drift_io import _json_key

    assert _json_key(b'"s-1"') == b"s-1"
    assert _json_key(b"s-1") == b"s-1"  # not JSON: kept, so it shows up as a drifted key
    assert _json_key(b"17") == b"17"  # JSON but not a string: kept
    assert _json_key(None) is None


def test_the_faust_instances_table_is_compared_at_its_as_of_seq(
    history: list[ControlEvent],
) -> None:
    from projections.fold.assignments import instance_updates

    state, records = ClusterState(), []
    for event in history:  # what the projector writes to its instances table, in order
        before, state = state, apply(state, event)
        for u in instance_updates(state, changes(before, state, event).instances):
            records.append((u.key.encode(), None if u.value is None else orjson.dumps(u.value)))

    def check(view: Any) -> Any:
        until = view.as_of_seq - 1
        before, n = fold_until(ClusterState(), history, seq=until)
        seen: dict[str, list[Any]] = {}
        head = instance_values_after(before, history[n:], seen)
        return compare_instances(before, seen, view, head_seq=head.seq)

    assert check(latest_assignments(records)).clean
    # a table read part-way (the last records, even half of one event's, not there yet) is
    # lag, never drift, wherever the read stops
    for cut in range(len(records) - 12, len(records)):
        report = check(latest_assignments(records[:cut]))
        assert report.clean, (cut, report.drifts)
    assert check(latest_assignments(records[:-3])).lag >= 1
    # a changed entry is drift of that server, in the instances table of the Faust view
    view = latest_assignments(records)
    victim = sorted(k for k, v in view.latest.items() if v is not None)[0]
    bad = dict(view.latest[victim], max_streams=12345)
    report = check(latest_assignments([*records, (victim.encode(), orjson.dumps(bad))]))
    (drift,) = report.drifts
    assert (drift.projection, drift.table, drift.key) == (
        Projection.FAUST_TABLES,
        "instances",
        victim,
    )
    assert "max_streams" in drift.fields
    # a stale entry (the later updates of a server never written) is drift too
    from projections.fold.assignments import same_instance

    def values(key: bytes) -> list[Any]:
        return [orjson.loads(v) for k, v in records if k == key and v is not None]

    moved = sorted(
        k for k, _ in records if len(vs := values(k)) > 1 and not same_instance(vs[0], vs[-1])
    )[0]
    first = next(r for r in records if r[0] == moved)
    report = check(latest_assignments([*[r for r in records if r[0] != moved], first]))
    assert [d.key for d in report.drifts] == [moved.decode()]
