"""A circuit breaker as a pure state machine, plus a thin wrapper that holds it.

States::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(reset_timeout elapsed; one probe allowed)--> HALF_OPEN
    HALF_OPEN --(probe succeeds)--> CLOSED
    HALF_OPEN --(probe fails)--> OPEN (the timer starts again)

The functions take ``now`` (monotonic seconds) and return a new value; nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import NamedTuple


class CircuitOpenError(Exception):
    """The breaker is open: the call was not even attempted. Shells map it into their own
    error tree (``raise TransportError(...) from exc``) and ask ``retriable``."""

    retriable = True

    def __init__(self, message: str, *, breaker: str = "") -> None:
        super().__init__(message)
        self.breaker = breaker


class BreakerState(StrEnum):
    """Where the breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerPolicy(NamedTuple):
    """Thresholds (from settings)."""

    failure_threshold: int
    reset_timeout: float
    half_open_max_calls: int = 1


class Breaker(NamedTuple):
    """The breaker's value: state, consecutive failures, when it opened, probes in flight."""

    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0
    probes: int = 0


def allow(breaker: Breaker, now: float, policy: BreakerPolicy) -> tuple[bool, Breaker]:
    """May a call go through now? Returns the decision and the (maybe moved) breaker."""
    if breaker.state is BreakerState.CLOSED:
        return True, breaker
    if breaker.state is BreakerState.OPEN:
        if now - breaker.opened_at < policy.reset_timeout:
            return False, breaker
        return True, breaker._replace(state=BreakerState.HALF_OPEN, probes=1)
    if breaker.probes < policy.half_open_max_calls:
        return True, breaker._replace(probes=breaker.probes + 1)
    return False, breaker


def on_success(breaker: Breaker, now: float, policy: BreakerPolicy) -> Breaker:
    """A call succeeded: any state closes (a success proves the path works)."""
    del now, policy  # the signature matches on_failure so callers treat both alike
    return Breaker()


def on_failure(breaker: Breaker, now: float, policy: BreakerPolicy) -> Breaker:
    """A call failed: count it; open at the threshold, re-open a failed probe."""
    if breaker.state is BreakerState.HALF_OPEN:
        return Breaker(BreakerState.OPEN, breaker.failures + 1, now, 0)
    failures = breaker.failures + 1
    if breaker.state is BreakerState.OPEN:
        return breaker._replace(failures=failures)
    if failures >= policy.failure_threshold:
        return Breaker(BreakerState.OPEN, failures, now, 0)
    return breaker._replace(failures=failures)


class CircuitBreaker:
    """Holds a :class:`Breaker` and a clock; the shell asks it before each Kafka call."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float], name: str = ""):
        self.policy = policy
        self.name = name
        self._clock = clock
        self.value = Breaker()

    @property
    def state(self) -> BreakerState:
        """The current state (``OPEN`` stays ``OPEN`` until a call is allowed through)."""
        return self.value.state

    def allow(self) -> bool:
        """Ask before a call; ``False`` means skip it (raise or fall back)."""
        ok, self.value = allow(self.value, self._clock(), self.policy)
        return ok

    def check(self, what: str) -> None:
        """Ask before a call; raises :class:`CircuitOpenError` naming ``what`` when open."""
        if not self.allow():
            name = f" {self.name}" if self.name else ""
            raise CircuitOpenError(f"{what}: circuit{name} open", breaker=self.name)

    def success(self) -> None:
        """Report that the allowed call worked."""
        self.value = on_success(self.value, self._clock(), self.policy)

    def failure(self) -> None:
        """Report that the allowed call failed."""
        self.value = on_failure(self.value, self._clock(), self.policy)
