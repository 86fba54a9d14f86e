"""The phi accrual arithmetic (``control_plane.decide.phi``) and the windows ``Liveness`` keeps."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.decide.liveness import Liveness
from control_plane.decide.phi import Intervals, earliest_suspicion, phi, phi_of, suspect_at
from events.heartbeat import Heartbeat

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MS = timedelta(milliseconds=1)
PAUSE = timedelta(seconds=1)
MIN_STD = timedelta(milliseconds=100)


def _window(*ms: int, capacity: int = 100) -> Intervals:
    w = Intervals()
    for x in ms:
        w = w.push(x * 1000, capacity)
    return w


def _normal_phi(y: float) -> float:
    """-log10(1 - Phi(y)) for the exact standard normal CDF."""
    return -math.log10(0.5 * math.erfc(y / math.sqrt(2)))


# --- phi(elapsed, mean, std) ------------------------------------------------------------


def test_phi_at_the_mean_is_log10_2() -> None:
    assert phi(1000.0, 1000.0, 100.0) == pytest.approx(math.log10(2), abs=1e-12)


@pytest.mark.parametrize(
    ("k", "expected"),
    [(1, 0.7995083), (2, 1.6428279), (3, 2.9094753), (5.226, 8.0000428)],
)
def test_phi_at_mean_plus_k_std_has_the_logistic_values(k: float, expected: float) -> None:
    # log10(1 + exp(z)) with z = k * (1.5976 + 0.070566 * k**2), worked out by hand
    z = k * (1.5976 + 0.070566 * k * k)
    assert math.log10(1 + math.exp(z)) == pytest.approx(expected, abs=1e-6)
    assert phi(1000 + k * 200, 1000, 200) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("y", [-3.0, -1.5, 0.0, 0.5, 1.0, 2.0, 3.0])
def test_phi_approximates_the_normal_tail(y: float) -> None:
    # the logistic approximation's CDF error is 0.00014 at +-3.16: small in phi up to 3 sigma
    assert phi(y, 0.0, 1.0) == pytest.approx(_normal_phi(y), abs=0.05)


def test_phi_neither_overflows_nor_goes_negative_far_from_the_mean() -> None:
    assert phi(0.0, 1e6, 1.0) == 0.0  # exp underflows to 0 instead of overflowing
    assert 0.0 < phi(0.0, 1000.0, 300.0) < 0.01
    late = phi(1e7, 0.0, 1.0)  # Akka returns infinity here; a finite, huge value is kept
    assert math.isfinite(late) and late > 1e18


def test_phi_refuses_a_non_positive_std() -> None:
    with pytest.raises(ValueError, match="std"):
        phi(1.0, 1.0, 0.0)


def test_more_jitter_in_the_history_means_less_suspicion_for_the_same_silence() -> None:
    regular = _window(*[1000] * 20)
    jittery = _window(*[500, 1500] * 10)
    assert regular.mean_us() == jittery.mean_us() == 1_000_000
    silence = timedelta(seconds=3)
    calm = phi_of(regular, silence, acceptable_pause=PAUSE, min_std=MIN_STD)
    nervous = phi_of(jittery, silence, acceptable_pause=PAUSE, min_std=MIN_STD)
    assert calm > 8 > nervous
    assert suspect_at(regular, 8, acceptable_pause=PAUSE, min_std=MIN_STD) < suspect_at(
        jittery, 8, acceptable_pause=PAUSE, min_std=MIN_STD
    )


def test_min_std_floors_a_perfectly_regular_history() -> None:
    w = _window(*[1000] * 10)
    assert w.std_us() == 0.0
    one_floor_past = PAUSE + timedelta(seconds=1) + MIN_STD  # mean + pause + 1 * min_std
    level = phi_of(w, one_floor_past, acceptable_pause=PAUSE, min_std=MIN_STD)
    assert level == pytest.approx(phi(1.0, 0.0, 1.0))
    # a larger floor makes the same silence less suspicious
    assert phi_of(w, one_floor_past, acceptable_pause=PAUSE, min_std=MIN_STD * 4) < level


def test_acceptable_pause_shifts_the_mean() -> None:
    w = _window(*[1000] * 10)
    at_mean = timedelta(seconds=1)
    assert phi_of(w, at_mean, acceptable_pause=timedelta(0), min_std=MIN_STD) == pytest.approx(
        math.log10(2)
    )
    assert phi_of(w, at_mean + PAUSE, acceptable_pause=PAUSE, min_std=MIN_STD) == pytest.approx(
        math.log10(2)
    )


def test_an_empty_window_has_no_opinion() -> None:
    assert phi_of(Intervals(), timedelta(hours=1), acceptable_pause=PAUSE, min_std=MIN_STD) == 0


def test_suspect_at_is_where_phi_crosses_the_threshold() -> None:
    w = _window(800, 1200, 1000, 900, 1100, 1000)
    at = suspect_at(w, 8.0, acceptable_pause=PAUSE, min_std=MIN_STD)
    assert phi_of(w, at + MS, acceptable_pause=PAUSE, min_std=MIN_STD) >= 8.0
    assert phi_of(w, at - MS, acceptable_pause=PAUSE, min_std=MIN_STD) < 8.0


def test_earliest_suspicion_is_pause_plus_y_times_min_std() -> None:
    floor = earliest_suspicion(8.0, acceptable_pause=PAUSE, min_std=MIN_STD)
    # phi(y) = 8 at y ~ 5.226; one millisecond of margin
    assert floor == pytest.approx(PAUSE + 5.226 * MIN_STD - MS, abs=MS)
    with pytest.raises(ValueError, match="threshold"):
        earliest_suspicion(0.2, acceptable_pause=PAUSE, min_std=MIN_STD)


# --- the window -------------------------------------------------------------------------


def test_window_keeps_the_newest_samples_and_exact_sums() -> None:
    w = _window(*range(1, 8), capacity=5)
    assert w.samples == tuple(x * 1000 for x in range(3, 8))
    assert w.size == 5
    assert w.total == sum(w.samples) and w.squares == sum(x * x for x in w.samples)
    assert w.mean_us() == statistics.fmean(w.samples)
    assert w.std_us() == pytest.approx(statistics.pstdev(w.samples))


def test_window_shrinks_to_a_smaller_capacity() -> None:
    w = _window(*range(1, 11)).push(11_000, 3)
    assert w.samples == (9000, 10_000, 11_000)
    assert (w.total, w.squares) == (30_000, sum(x * x for x in w.samples))


def test_window_refuses_a_capacity_below_one() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Intervals().push(1, 0)


# --- properties -------------------------------------------------------------------------

_samples = st.lists(st.integers(1, 60_000_000), min_size=1, max_size=40)
_elapsed = st.integers(0, 600_000_000)


@given(
    samples=_samples,
    a=_elapsed,
    b=_elapsed,
    pause=st.integers(0, 10_000_000),
    floor=st.integers(1, 5_000_000),
)
def test_phi_is_non_negative_monotone_and_deterministic(
    samples: list[int], a: int, b: int, pause: int, floor: int
) -> None:
    w = Intervals()
    for x in samples:
        w = w.push(x, 20)
    kw = {
        "acceptable_pause": timedelta(microseconds=pause),
        "min_std": timedelta(microseconds=floor),
    }
    lo, hi = sorted((a, b))
    p_lo = phi_of(w, timedelta(microseconds=lo), **kw)
    p_hi = phi_of(w, timedelta(microseconds=hi), **kw)
    assert 0.0 <= p_lo <= p_hi and math.isfinite(p_hi)
    again = Intervals()
    for x in samples:
        again = again.push(x, 20)
    assert again == w and phi_of(again, timedelta(microseconds=lo), **kw) == p_lo


@given(samples=_samples, capacity=st.integers(1, 50))
def test_window_is_bounded_and_its_sums_stay_exact(samples: list[int], capacity: int) -> None:
    w = Intervals()
    for x in samples:
        w = w.push(x, capacity)
    kept = samples[-capacity:]
    assert w.samples == tuple(kept)
    assert (w.total, w.squares) == (sum(kept), sum(x * x for x in kept))
    assert w.std_us() >= 0.0


@given(
    samples=_samples,
    threshold=st.floats(1.0, 50.0),
    pause=st.integers(0, 10_000_000),
    floor=st.integers(1, 5_000_000),
)
def test_no_history_reaches_the_threshold_before_earliest_suspicion(
    samples: list[int], threshold: float, pause: int, floor: int
) -> None:
    """Failure detection reads only incarnations silent this long: it must be a lower bound."""
    w = Intervals()
    for x in samples:
        w = w.push(x, 100)
    kw = {
        "acceptable_pause": timedelta(microseconds=pause),
        "min_std": timedelta(microseconds=floor),
    }
    earliest = earliest_suspicion(threshold, **kw)
    assert phi_of(w, earliest, **kw) < threshold


# --- Liveness keeps the windows ---------------------------------------------------------


def _hb(incarnation: str, server_id: str = "w0") -> Heartbeat:
    return Heartbeat(
        id="h", source="w", time=T0, server_id=server_id, incarnation=incarnation,
        ip=IPv4Address("127.0.0.1"), port=1, max_streams=1,
    )  # fmt: skip


def test_liveness_keeps_a_bounded_window_per_current_incarnation() -> None:
    lv = Liveness(watch_started_at=T0, phi_window=3)
    for ms in (0, 1000, 2100, 2100, 3000, 4200):  # 2100 twice: one poll read both
        lv.observe(_hb("a"), T0 + ms * MS)
    w = lv.intervals_of("w0", "a")
    assert w is not None and w.samples == (1_100_000, 900_000, 1_200_000)
    assert lv.intervals_of("w0", "b") is None
    lv.observe(_hb("b"), T0 + 5000 * MS)  # a new incarnation starts afresh
    assert lv.intervals_of("w0", "b") is None and lv.intervals_of("w0", "a") is None
    lv.observe(_hb("b"), T0 + 6000 * MS)
    again = lv.intervals_of("w0", "b")
    assert again is not None and again.samples == (1_000_000,)


def test_liveness_learns_nothing_from_a_clock_stepping_back() -> None:
    lv = Liveness(watch_started_at=T0)
    lv.observe(_hb("a"), T0 + 5000 * MS)
    lv.observe(_hb("a"), T0 + 4000 * MS)
    assert lv.intervals_of("w0", "a") is None
    lv.observe(_hb("a"), T0 + 5000 * MS)
    w = lv.intervals_of("w0", "a")
    assert w is not None and w.samples == (1_000_000,)


def test_liveness_without_a_window_keeps_no_intervals() -> None:
    lv = Liveness(watch_started_at=T0, phi_window=0)
    for s in range(5):
        lv.observe(_hb("a"), T0 + timedelta(seconds=s))
    assert lv.intervals == {} and lv.last_seen("w0", "a") == T0 + timedelta(seconds=4)
