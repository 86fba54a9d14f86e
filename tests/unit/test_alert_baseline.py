"""Learned thresholds (control_plane.alerts.baseline): hypothesis properties on synthetic series.

With the default config (k = 4, warm-up 20, confirm N = 2, relearn after 30, rel_floor 0.1):
(a) a steady series whose noise stays within 10% of its level never alerts, at any level and
length; (b) after warm-up, a step that puts every sample more than k deviations out (as learned
just before it) alerts at its N-th sample; (c) it resolves at its 30th sample, when the baseline
adopts the new level, and stays resolved; (d) a static bound alerts on every sample past it.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from control_plane.alerts import Baseline, BaselineConfig, Direction, InvalidConfig, InvalidInput
from control_plane.alerts.baseline import update

DEFAULT = BaselineConfig()
N = DEFAULT.confirm  # a step is alerted at its N-th sample
RELEARN = DEFAULT.relearn_after
SHARE = 0.1  # noise up to this share of the level
PROPS = settings(max_examples=200, deadline=None, database=None)

directions = st.sampled_from(Direction)
noise = st.lists(st.floats(-1, 1), max_size=400)


def feed(baseline: Baseline, samples: list[float]) -> tuple[Baseline, list[bool]]:
    alerts = []
    for x in samples:
        baseline, verdict = update(baseline, x)
        alerts.append(verdict.alert)
    return baseline, alerts


def test_the_documented_numbers_are_the_defaults() -> None:
    assert (N, RELEARN, DEFAULT.k, DEFAULT.warmup, DEFAULT.rel_floor) == (2, 30, 4.0, 20, 0.1)


@PROPS
@given(
    level=st.floats(-1e9, 1e9, allow_subnormal=False),
    share=st.floats(0, SHARE),
    u=noise,
    direction=directions,
)
def test_a_steady_series_with_bounded_noise_never_alerts(
    level: float, share: float, u: list[float], direction: Direction
) -> None:
    amplitude = share * abs(level)
    _, alerts = feed(
        Baseline(BaselineConfig(direction=direction)), [level + x * amplitude for x in u]
    )
    assert not any(alerts)


@st.composite
def steps(draw: st.DrawFn) -> tuple[Direction, list[bool]]:
    """A positive steady level learned past warm-up, then a step whose every sample lies more
    than k deviations beyond the learned mean (the bad side), with its own noise up to 10%."""
    direction = draw(directions)
    level = draw(st.floats(1e-6, 1e9))
    pre_noise = draw(st.floats(0, SHARE)) * level
    pre = [
        level + x * pre_noise for x in draw(st.lists(st.floats(-1, 1), min_size=20, max_size=80))
    ]
    learned, alerts = feed(Baseline(BaselineConfig(direction=direction)), pre)
    assert not any(alerts)
    sign = 1.0 if direction is Direction.UP else -1.0
    edge = learned.mean + sign * DEFAULT.k * learned.deviation() * (1 + draw(st.floats(0.01, 1)))
    assume(edge > 0)
    share, gap = draw(st.floats(0, SHARE)), 1 + draw(st.floats(0.001, 10))
    new_level = edge * gap / (1 - share) if sign > 0 else edge / gap / (1 + share)
    post_u = draw(st.lists(st.floats(-1, 1), min_size=RELEARN + 1, max_size=RELEARN + 60))
    post = [new_level * (1 + x * share) for x in post_u]
    assert all(sign * (x - learned.mean) > DEFAULT.k * learned.deviation() for x in post)
    return direction, feed(learned, post)[1]


@PROPS
@given(steps())
def test_a_step_of_k_deviations_is_alerted_at_its_nth_sample(
    step: tuple[Direction, list[bool]],
) -> None:
    _, alerts = step
    assert alerts[: N - 1] == [False] * (N - 1)  # one sample is a spike, not yet a step
    assert alerts[N - 1 : RELEARN - 1] == [True] * (RELEARN - N)


@PROPS
@given(steps())
def test_a_step_that_persists_is_relearned_and_the_alert_resolves(
    step: tuple[Direction, list[bool]],
) -> None:
    _, alerts = step
    assert not any(alerts[RELEARN - 1 :])


@PROPS
@given(
    samples=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
    bound=st.floats(-1e6, 1e6),
    direction=directions,
)
def test_a_static_bound_fires_whatever_the_baseline_learned(
    samples: list[float], bound: float, direction: Direction
) -> None:
    baseline = Baseline(BaselineConfig(direction=direction, bound=bound))
    sign = 1.0 if direction is Direction.UP else -1.0
    for x in samples:
        baseline, verdict = update(baseline, x)
        if sign * (x - bound) > 0:
            assert verdict.alert and verdict.cause == "bound"


def test_no_learned_verdict_during_warm_up() -> None:
    warm = DEFAULT.warmup - 1
    _, alerts = feed(Baseline(), [1.0] * warm + [1e9, 1e9])
    assert not any(alerts[: warm + 1])  # the 20th sample is still learned, not judged
    learned, _ = feed(Baseline(), [1.0] * DEFAULT.warmup)
    assert feed(learned, [1e9, 1e9])[1] == [False, True]


def test_the_floor_keeps_a_perfectly_steady_series_from_flagging_a_wiggle() -> None:
    baseline, _ = feed(Baseline(), [1.0] * 100)
    assert baseline.var == 0.0
    _, alerts = feed(baseline, [1.3, 1.3, 1.3])  # 30%: within k * rel_floor = 40%
    assert not any(alerts)
    _, alerts = feed(baseline, [1.5, 1.5])
    assert alerts == [False, True]


def test_a_spike_leaves_the_baseline_as_it_was() -> None:
    baseline, _ = feed(Baseline(), [10.0, 11.0] * 20)
    after, verdict = update(baseline, 1000.0)
    assert verdict.cause == "anomaly" and not verdict.alert  # one sample: not confirmed
    assert (after.mean, after.var) == (baseline.mean, baseline.var)
    again, _ = update(after, 10.5)
    assert again.run == 0  # a normal sample ends the run


def test_a_good_side_outlier_neither_widens_the_band_nor_alerts() -> None:
    down, _ = feed(Baseline(BaselineConfig(direction=Direction.DOWN)), [1000.0] * 30)
    after, verdict = update(down, 5000.0)
    assert (verdict.cause, verdict.alert) == ("outlier", False)
    assert (after.mean, after.var) == (down.mean, down.var)
    assert feed(after, [100.0, 100.0])[1] == [False, True]  # the drop is still caught


def test_a_lasting_shift_to_the_good_side_is_relearned_too() -> None:
    down, _ = feed(Baseline(BaselineConfig(direction=Direction.DOWN)), [1000.0] * 30)
    shifted, alerts = feed(down, [2000.0] * RELEARN)
    assert not any(alerts) and shifted.mean == 2000.0
    assert feed(shifted, [1000.0, 1000.0])[1] == [False, True]  # back to 1000 is now a drop


def test_anomaly_weight_lets_anomalies_move_the_mean_a_little() -> None:
    baseline, _ = feed(Baseline(BaselineConfig(anomaly_weight=0.5)), [10.0] * 30)
    after, _ = update(baseline, 100.0)
    assert after.mean == pytest.approx(10.0 + 0.1 * 0.5 * 90.0)


def test_lower_is_bad_ignores_rises_and_flags_drops() -> None:
    down = Baseline(BaselineConfig(direction=Direction.DOWN))
    learned, _ = feed(down, [100.0] * 30)
    assert not any(feed(learned, [500.0, 500.0])[1])
    assert feed(learned, [10.0, 10.0])[1] == [False, True]


def test_bad_config_and_samples_are_refused_with_the_field_named() -> None:
    with pytest.raises(InvalidConfig, match="relearn_after"):
        BaselineConfig(confirm=5, relearn_after=5)
    with pytest.raises(InvalidConfig, match="alpha"):
        BaselineConfig(alpha=0)
    with pytest.raises(InvalidInput, match="finite"):
        update(Baseline(), math.nan)
