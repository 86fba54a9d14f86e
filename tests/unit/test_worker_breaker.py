"""Circuit-breaker state machine and back-off bounds: pure, injected clock and randomness."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.backoff import Backoff, retry
from resilience.breaker import (
    Breaker,
    BreakerPolicy,
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    allow,
    on_failure,
    on_success,
)
from worker_agent.errors import StreamStopError, TransportError

POLICY = BreakerPolicy(failure_threshold=3, reset_timeout=5.0)


def test_closed_opens_after_threshold_consecutive_failures():
    b = Breaker()
    for _ in range(2):
        b = on_failure(b, 0.0, POLICY)
    assert b.state is BreakerState.CLOSED
    assert allow(b, 0.0, POLICY)[0]
    b = on_failure(b, 1.0, POLICY)
    assert b.state is BreakerState.OPEN and b.opened_at == 1.0
    assert allow(b, 5.9, POLICY)[0] is False


def test_success_resets_the_failure_count():
    b = on_failure(on_failure(Breaker(), 0, POLICY), 0, POLICY)
    b = on_success(b, 0, POLICY)
    b = on_failure(on_failure(b, 0, POLICY), 0, POLICY)
    assert b.state is BreakerState.CLOSED


def test_open_goes_half_open_after_reset_timeout_and_allows_one_probe():
    b = Breaker(BreakerState.OPEN, 3, opened_at=10.0)
    ok, b = allow(b, 15.0, POLICY)
    assert ok and b.state is BreakerState.HALF_OPEN
    ok2, b = allow(b, 15.1, POLICY)
    assert not ok2  # only half_open_max_calls probes at once


def test_half_open_probe_success_closes_and_failure_reopens():
    _, half = allow(Breaker(BreakerState.OPEN, 3, opened_at=0.0), 5.0, POLICY)
    assert on_success(half, 6.0, POLICY) == Breaker()
    reopened = on_failure(half, 6.0, POLICY)
    assert reopened.state is BreakerState.OPEN and reopened.opened_at == 6.0
    assert allow(reopened, 10.9, POLICY)[0] is False
    assert allow(reopened, 11.0, POLICY)[0] is True


def test_wrapper_uses_injected_clock():
    now = [0.0]
    cb = CircuitBreaker(BreakerPolicy(1, 2.0), clock=lambda: now[0])
    assert cb.allow()
    cb.failure()
    assert cb.state is BreakerState.OPEN and not cb.allow()
    now[0] = 2.0
    assert cb.allow() and cb.state is BreakerState.HALF_OPEN
    cb.success()
    assert cb.state is BreakerState.CLOSED


def test_check_raises_the_one_circuit_open_error_naming_the_call():
    now = [0.0]
    cb = CircuitBreaker(POLICY, lambda: now[0], name="produce")
    cb.check("send heartbeat")  # closed: no error
    for _ in range(POLICY.failure_threshold):
        cb.failure()
    with pytest.raises(CircuitOpenError, match=r"send heartbeat: circuit produce open") as info:
        cb.check("send heartbeat")
    assert info.value.retriable and info.value.breaker == "produce"
    now[0] = POLICY.reset_timeout
    cb.check("send heartbeat")  # half-open: the probe is let through


@given(
    base=st.floats(0.001, 10),
    cap=st.floats(0.001, 100),
    attempt=st.integers(0, 10_000),
    r=st.floats(0, 1),
)
def test_backoff_delay_is_bounded_full_jitter(base, cap, attempt, r):
    b = Backoff(base, cap)
    d = b.delay(attempt, lambda: r)
    assert 0.0 <= d <= min(cap, b.ceiling(attempt)) <= cap
    assert b.ceiling(attempt) <= b.ceiling(attempt + 1)


def test_backoff_grows_exponentially_until_the_cap():
    b = Backoff(0.5, 10.0)
    assert [b.ceiling(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert b.delay(3, lambda: 0.5) == 2.0


async def test_retry_retries_retriable_errors_then_succeeds():
    calls, sleeps = [], []

    async def op():
        calls.append(1)
        if len(calls) < 3:
            raise TransportError("down")
        return "ok"

    async def fake_sleep(s):
        sleeps.append(s)

    result = await retry(
        op, backoff=Backoff(1, 4), attempts=5, rand=lambda: 1.0, what="op", sleep=fake_sleep
    )
    assert result == "ok" and len(calls) == 3 and sleeps == [1.0, 2.0]


async def test_retry_does_not_retry_permanent_errors_and_gives_up_when_exhausted():
    async def permanent():
        raise StreamStopError("no")

    with pytest.raises(StreamStopError):
        await retry(permanent, backoff=Backoff(1, 1), attempts=5, rand=lambda: 0, what="x")

    async def always():
        raise TransportError("down")

    with pytest.raises(TransportError):
        await retry(
            always,
            backoff=Backoff(0.001, 0.001),
            attempts=2,
            rand=lambda: 0,
            what="x",
            sleep=lambda s: asyncio.sleep(0),
        )
