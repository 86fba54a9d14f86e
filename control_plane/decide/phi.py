"""The phi accrual failure detector's arithmetic (Hayashibara et al. 2004, as in Akka).

Pure and deterministic: no clock, no state beyond the immutable :class:`Intervals` window
the caller keeps (``Liveness`` keeps one per server, for its current incarnation).

For the inter-arrival times of an incarnation's heartbeats, with mean ``m`` and standard
deviation ``s`` (at least ``min_std``), and ``elapsed`` the silence since its last heartbeat::

    y   = (elapsed - (m + acceptable_pause)) / s
    F   = 1 / (1 + exp(-y * (1.5976 + 0.070566 * y**2)))   # logistic approximation of the
                                                            # normal CDF (Akka's; error
                                                            # 0.00014 at y = +-3.16)
    phi = -log10(1 - F)

so phi = 8 means: a heartbeat this late happens once in 10**8 if the history is right.
``phi`` is computed as ``log10(1 + exp(z))`` with ``z = y * (1.5976 + 0.070566 * y**2)``,
which is the same value without Akka's overflow to infinity for very late heartbeats.

Samples are whole microseconds, so the window's sums are exact integers: the same
heartbeats give the same phi, with no drift from removing old samples.
"""

from __future__ import annotations

import math
from datetime import timedelta
from functools import lru_cache
from typing import NamedTuple

_US = timedelta(microseconds=1)
_LN10 = math.log(10.0)


class Intervals(NamedTuple):
    """A bounded window of inter-arrival times in microseconds, oldest first, with their
    sum and sum of squares (exact integers)."""

    samples: tuple[int, ...] = ()
    total: int = 0
    squares: int = 0

    def push(self, sample_us: int, capacity: int) -> Intervals:
        """This window with ``sample_us`` added, the oldest samples dropped past ``capacity``."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        samples, square = self.samples, sample_us * sample_us
        extra = len(samples) + 1 - capacity
        if extra <= 0:
            return Intervals((*samples, sample_us), self.total + sample_us, self.squares + square)
        if extra == 1:  # the usual case, kept cheap: it runs for every heartbeat
            old = samples[0]
            return Intervals(
                (*samples[1:], sample_us),
                self.total - old + sample_us,
                self.squares - old * old + square,
            )
        gone = samples[:extra]  # the capacity shrank
        return Intervals(
            (*samples[extra:], sample_us),
            self.total - sum(gone) + sample_us,
            self.squares - sum(x * x for x in gone) + square,
        )

    @property
    def size(self) -> int:
        """How many samples the window holds."""
        return len(self.samples)

    def mean_us(self) -> float:
        """The mean interval (population), in microseconds; 0 for an empty window."""
        return self.total / len(self.samples) if self.samples else 0.0

    def std_us(self) -> float:
        """The standard deviation (population, as Akka's), in microseconds."""
        n = len(self.samples)
        if n == 0:
            return 0.0
        # n * var * n, an exact non-negative integer: no cancellation, never below zero
        return math.sqrt(n * self.squares - self.total * self.total) / n


def phi(elapsed: float, mean: float, std: float) -> float:
    """-log10(1 - F(elapsed)) for F the logistic approximation of the N(mean, std) CDF.

    Any one unit for the three; ``std`` > 0. Never negative; non-decreasing in ``elapsed``;
    ``log10(2)`` at ``elapsed == mean``.
    """
    if std <= 0:
        raise ValueError(f"std must be > 0, got {std}")
    y = (elapsed - mean) / std
    z = y * (1.5976 + 0.070566 * y * y)
    # log(1 + e**z) without overflow for large z, nor loss of precision for negative z
    if z > 0:
        return (z + math.log1p(math.exp(-z))) / _LN10
    return math.log1p(math.exp(z)) / _LN10


def phi_of(
    window: Intervals, elapsed: timedelta, *, acceptable_pause: timedelta, min_std: timedelta
) -> float:
    """The suspicion level of an incarnation silent for ``elapsed`` with this history.

    The mean is shifted by ``acceptable_pause`` and the deviation floored at ``min_std``, as
    Akka does; an empty window has no opinion (phi 0): callers fall back to fixed thresholds
    below a minimum number of samples anyway.
    """
    if not window.samples:
        return 0.0
    std = max(window.std_us(), min_std / _US)
    return phi(elapsed / _US, window.mean_us() + acceptable_pause / _US, std)


def suspect_at(
    window: Intervals, threshold: float, *, acceptable_pause: timedelta, min_std: timedelta
) -> timedelta:
    """The silence at which this history's phi reaches ``threshold`` (for logs and docs):
    ``mean + acceptable_pause + y * max(std, min_std)`` with ``phi(y) = threshold``."""
    std = max(window.std_us(), min_std / _US)
    shift = _y_at(threshold) * std
    return timedelta(microseconds=round(window.mean_us() + shift)) + acceptable_pause


def earliest_suspicion(
    threshold: float, *, acceptable_pause: timedelta, min_std: timedelta
) -> timedelta:
    """A silence shorter than this never reaches ``threshold``, whatever the history.

    Phi grows as the mean and the deviation shrink (past the mean, which a threshold above
    ``log10(2)`` always is); the mean is at least 0 and the deviation at least ``min_std``.
    Failure detection reads only the incarnations silent this long. One millisecond of
    margin covers rounding.
    """
    return max(_earliest(threshold, acceptable_pause / _US, min_std / _US), timedelta(0))


@lru_cache(maxsize=16)
def _earliest(threshold: float, pause_us: float, min_std_us: float) -> timedelta:
    return timedelta(microseconds=pause_us + _y_at(threshold) * min_std_us - 1000)


@lru_cache(maxsize=16)
def _y_at(threshold: float) -> float:
    """The smallest ``y`` (to 1e-9) with ``phi(y, 0, 1) >= threshold``, by bisection
    (phi is monotone in ``y``); the lower end, so the answer never overshoots."""
    if threshold <= math.log10(2.0):
        raise ValueError(f"threshold must be > log10(2), got {threshold}")
    lo, hi = 0.0, 1.0
    while phi(hi, 0.0, 1.0) < threshold:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-9:
        mid = (lo + hi) / 2
        if phi(mid, 0.0, 1.0) < threshold:
            lo = mid
        else:
            hi = mid
    return lo
