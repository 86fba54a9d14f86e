"""Learned thresholds: "unusual for this cluster", from a signal's own history.

Why: a constant such as "heartbeat latency above 200 ms" is wrong for every cluster but one.
Each signal learns its normal level and spread, and a sample is anomalous when it lies more
than ``k`` deviations on the bad side of that level. Per sample ``x`` (``s`` = +1 when higher
is bad, -1 when lower is bad):

- **warm-up**: the first ``warmup`` samples are learned with weight ``max(alpha, 1/n)`` (a
  plain running mean, so the first sample does not dominate) and give no learned verdict;
- **deviation** ``d = max(sqrt(var), rel_floor * |mean|, min_deviation)``: the floors keep a
  perfectly steady series from turning any tiny wiggle into an anomaly;
- an **outlier** lies more than ``k * d`` from the mean; on the bad side (``s * (x - mean) >
  k * d``) it is **anomalous**, and ``confirm`` anomalous samples in a row raise the alert, so
  one spike does not;
- **learning**: a normal sample updates the exponentially weighted mean and variance
  (``mean += alpha*diff``, ``var = (1-alpha) * (var + alpha*diff**2)``); an outlier moves the
  mean with weight ``alpha * anomaly_weight`` only (default 0) and never the variance, so a step
  is detected instead of absorbed, and one outlier (even a good one: a burst of throughput)
  does not widen the band that must catch the next;
- **re-learning**: ``relearn_after`` outliers in a row on one side are the new normal: the
  baseline adopts the run's own mean and variance (and an alert resolves);
- **static bound** (optional): a sample past ``bound`` alerts at once, learned or not.

Proved by tests/unit/test_alert_baseline.py with the defaults: no alert on a steady series whose
noise stays within 10% of its level; after warm-up, a step that puts every sample more than
``k`` deviations out alerts at its ``confirm``-th sample (N = 2); the alert resolves at the
step's ``relearn_after``-th sample (30) and stays resolved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from control_plane.alerts.errors import InvalidConfig, InvalidInput


class Direction(StrEnum):
    """Which side is bad: ``up`` for latencies and lags, ``down`` for throughputs."""

    UP = "up"
    DOWN = "down"


@dataclass(frozen=True, slots=True)
class BaselineConfig:
    """How one signal learns and judges (see the module docstring for the maths)."""

    alpha: float = 0.1
    k: float = 4.0
    warmup: int = 20
    confirm: int = 2
    relearn_after: int = 30
    rel_floor: float = 0.1
    min_deviation: float = 0.0
    anomaly_weight: float = 0.0
    direction: Direction = Direction.UP
    bound: float | None = None

    def __post_init__(self) -> None:
        checks = {
            "alpha": 0 < self.alpha <= 1,
            "k": self.k > 0,
            "warmup": self.warmup >= 1,
            "confirm": self.confirm >= 1,
            "relearn_after": self.relearn_after > self.confirm,
            "rel_floor": self.rel_floor >= 0,
            "min_deviation": self.min_deviation >= 0,
            "anomaly_weight": 0 <= self.anomaly_weight <= 1,
            "bound": self.bound is None or math.isfinite(self.bound),
        }
        for name, ok in checks.items():
            if not ok:
                raise InvalidConfig(f"BaselineConfig.{name} out of range: {getattr(self, name)!r}")


class Verdict(NamedTuple):
    """What one sample means. ``cause``: warmup, normal, anomaly, outlier (on the good side),
    relearned or bound."""

    alert: bool
    cause: str
    value: float
    mean: float
    deviation: float
    #: deviations on the bad side of the mean (``s * (x - mean) / d``; inf when ``d`` is 0)
    score: float


class Baseline(NamedTuple):
    """A signal's learned normal: its config, sample count, mean and variance, and the current
    run of outliers (count, their own mean and sum of squares (Welford), and side)."""

    config: BaselineConfig = BaselineConfig()
    n: int = 0
    mean: float = 0.0
    var: float = 0.0
    run: int = 0
    run_mean: float = 0.0
    run_m2: float = 0.0
    #: which side the run is on (a run on the good side is re-learned, never alerted)
    run_bad: bool = True

    def deviation(self) -> float:
        c = self.config
        return max(math.sqrt(self.var), c.rel_floor * abs(self.mean), c.min_deviation)


def update(baseline: Baseline, sample: float) -> tuple[Baseline, Verdict]:
    """Learn ``sample`` and judge it against what was learned before it."""
    if not math.isfinite(sample):
        raise InvalidInput(f"a metric sample must be a finite number, got {sample!r}")
    c = baseline.config
    sign = 1.0 if c.direction is Direction.UP else -1.0
    over = c.bound is not None and sign * (sample - c.bound) > 0
    d = baseline.deviation()
    excess = sign * (sample - baseline.mean)
    score = excess / d if d > 0 else (math.inf if excess > 0 else 0.0)

    def verdict(alert: bool, cause: str) -> Verdict:
        return Verdict(over or alert, "bound" if over else cause, sample, baseline.mean, d, score)

    if baseline.n < c.warmup:
        learned = _learn(baseline, sample, max(c.alpha, 1 / (baseline.n + 1)))
        return learned, verdict(False, "warmup")
    if abs(excess) <= c.k * d:
        return _learn(baseline, sample, c.alpha), verdict(False, "normal")
    bad = excess > 0
    same_side = bad == baseline.run_bad
    run = baseline.run + 1 if same_side else 1
    run_mean = baseline.run_mean if same_side else 0.0
    delta = sample - run_mean
    run_mean += delta / run
    run_m2 = (baseline.run_m2 if same_side else 0.0) + delta * (sample - run_mean)
    if run >= c.relearn_after:
        return Baseline(c, baseline.n + 1, run_mean, run_m2 / run), verdict(False, "relearned")
    mean = baseline.mean + c.alpha * c.anomaly_weight * (sample - baseline.mean)
    held = Baseline(c, baseline.n + 1, mean, baseline.var, run, run_mean, run_m2, bad)
    return held, verdict(bad and run >= c.confirm, "anomaly" if bad else "outlier")


def _learn(baseline: Baseline, sample: float, weight: float) -> Baseline:
    """One exponentially weighted step; a normal sample also ends any anomalous run."""
    diff = sample - baseline.mean
    return Baseline(
        baseline.config,
        baseline.n + 1,
        baseline.mean + weight * diff,
        (1 - weight) * (baseline.var + weight * diff * diff),
    )
