"""Reconcile decisions, retry bookkeeping, desired-set judging: pure, no event loop."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from events.heartbeat import DesiredSet
from resilience.backoff import Backoff
from worker_agent.reconcile import (
    DesiredVerdict,
    RetryState,
    Start,
    Stop,
    desired_streams,
    forget_retries,
    judge_desired,
    mismatch,
    reconcile,
    record_start_failure,
)

T0 = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def plan(desired, running, retries=None, capacity=100, now=0.0):
    return reconcile(
        desired=desired, running=running, retries=retries or {}, capacity=capacity, now=now
    )


def test_starts_desired_not_running_and_stops_running_not_desired():
    p = plan({"a": {}, "b": {"url": "x"}}, {"b": {"url": "x"}, "c": {}})
    assert p.starts == (Start("a", {}),)
    assert p.stops == (Stop("c"),)


def test_nothing_to_do_when_converged():
    p = plan({"a": {}, "b": {}}, {"a": {}, "b": {}})
    assert p.starts == () and p.stops == () and p.backing_off == ()


def test_changed_params_restart_the_stream():
    p = plan({"a": {"url": "new"}}, {"a": {"url": "old"}})
    assert p.stops == (Stop("a"),)
    assert p.starts == (Start("a", {"url": "new"}),)


def test_failed_start_waits_for_its_back_off_then_retries():
    retries = {"a": RetryState(attempts=2, next_at=10.0, error="boom")}
    waiting = plan({"a": {}}, {}, retries, now=9.9)
    assert waiting.starts == () and waiting.backing_off == ("a",)
    due = plan({"a": {}}, {}, retries, now=10.0)
    assert due.starts == (Start("a", {}),)


def test_capacity_is_never_exceeded_and_stops_free_slots():
    p = plan({"a": {}, "b": {}, "c": {}}, {"x": {}}, capacity=2)
    assert p.stops == (Stop("x"),)
    assert [s.stream_id for s in p.starts] == ["a", "b"]
    assert p.over_capacity == ("c",)


@given(
    desired=st.sets(st.sampled_from("abcdefgh")),
    running=st.sets(st.sampled_from("abcdefgh")),
    capacity=st.integers(0, 10),
)
def test_plan_properties(desired, running, capacity):
    running_map = {s: {} for s in sorted(running)[:capacity]}
    p = plan({s: {} for s in desired}, running_map, capacity=capacity)
    after = (set(running_map) - {s.stream_id for s in p.stops}) | {s.stream_id for s in p.starts}
    assert len(after) <= capacity
    assert after <= set(desired)
    assert set(desired) - after == set(p.over_capacity)
    # level-triggered: applying the plan and reconciling again does nothing more
    again = plan({s: {} for s in desired}, {s: {} for s in after}, capacity=capacity)
    assert again.stops == () and again.starts == ()


def test_record_start_failure_counts_and_backs_off_within_bounds():
    backoff = Backoff(base=1.0, cap=8.0)
    first = record_start_failure(None, error="e1", now=100.0, backoff=backoff, rand=lambda: 0.99)
    assert first.attempts == 1 and first.error == "e1"
    assert 100.0 <= first.next_at <= 101.0
    state = first
    for _ in range(10):
        state = record_start_failure(state, error="e", now=200.0, backoff=backoff, rand=lambda: 1.0)
    assert state.attempts == 11
    assert state.next_at == 208.0  # capped


def test_forget_retries_drops_undesired():
    retries = {"a": RetryState(1, 0.0, "x"), "b": RetryState(1, 0.0, "y")}
    assert forget_retries(retries, ["b"]) == {"b": retries["b"]}


def test_mismatch_is_symmetric_difference():
    assert mismatch(["a", "b"], ["b", "c"]) == ("a", "c")
    assert mismatch(["a"], ["a"]) == ()


def desired(**kw) -> DesiredSet:
    base = dict(
        id="d1",
        source="streamplane/orchestrator",
        time=T0,
        server_id="w-1",
        incarnation="inc-1",
        streams=("s1",),
        seq=5,
        epoch=1,
    )
    base.update(kw)
    return DesiredSet(**base)


def test_judge_desired():
    judge = lambda m, seq=0: judge_desired(  # noqa: E731
        m, server_id="w-1", incarnation="inc-1", applied_seq=seq
    )
    assert judge(desired()) is DesiredVerdict.APPLY
    assert judge(desired(incarnation="old")) is DesiredVerdict.IGNORE
    assert judge(desired(server_id="w-2")) is DesiredVerdict.IGNORE
    assert judge(desired(fenced=True)) is DesiredVerdict.FENCE
    assert judge(desired(incarnation="old", fenced=True)) is DesiredVerdict.IGNORE
    assert judge(desired(incarnation="old", fenced=True, seq=1)) is DesiredVerdict.IGNORE
    assert judge(desired(seq=4), seq=5) is DesiredVerdict.IGNORE
    assert judge(desired(seq=5), seq=5) is DesiredVerdict.APPLY


def test_a_newer_set_for_another_incarnation_supersedes_a_registered_process():
    judge = lambda m, seq=0: judge_desired(  # noqa: E731
        m, server_id="w-1", incarnation="inc-1", applied_seq=seq
    )
    # never given a set of its own: another incarnation's record is an older process's
    assert judge(desired(incarnation="other", seq=9), seq=0) is DesiredVerdict.IGNORE
    # given one at seq 5: a newer record for another incarnation means a successor exists
    assert judge(desired(incarnation="other", seq=9), seq=5) is DesiredVerdict.FENCE
    assert judge(desired(incarnation="other", seq=3), seq=5) is DesiredVerdict.IGNORE


def test_desired_streams_maps_params():
    m = desired(streams=("s1", "s2"), params={"s1": {"url": "rtsp://x"}})
    assert desired_streams(m) == {"s1": {"url": "rtsp://x"}, "s2": {}}


def test_seeded_random_gives_reproducible_plans():
    backoff = Backoff(0.5, 30.0)
    a = record_start_failure(None, error="x", now=0, backoff=backoff, rand=random.Random(7).random)
    b = record_start_failure(None, error="x", now=0, backoff=backoff, rand=random.Random(7).random)
    assert a == b
