"""decide's alerts in the orchestrator's log: once when they appear, then at most once per
interval while they keep being reported, and at once again after they went away."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from control_plane.orchestrator.log_lines import AlertLines

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NO_CAPACITY = "no capacity for stream s1 (priority 0)"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    out = [r.getMessage() for r in caplog.records if r.name == "streamplane.orchestrator"]
    caplog.clear()
    return out


def test_an_alert_reported_every_cycle_is_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    lines = AlertLines(every=timedelta(seconds=60))
    cycles = [T0 + timedelta(milliseconds=100 * i) for i in range(1250)]  # 125 s at 10 Hz
    logged: list[str] = []
    for now in cycles:
        lines.log([NO_CAPACITY, NO_CAPACITY], now)  # a repeat within one cycle is one report
        logged += _lines(caplog)
    assert logged[0] == f"alert: {NO_CAPACITY}"
    assert logged[1:] == [
        f"alert: {NO_CAPACITY} (again; 600 more report(s) in 60 s)",
        f"alert: {NO_CAPACITY} (again; 600 more report(s) in 60 s)",
    ]


def test_each_alert_is_its_own_and_a_returning_one_is_logged_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    lines = AlertLines(every=timedelta(seconds=60))
    lines.log([NO_CAPACITY], T0)
    lines.log([NO_CAPACITY, "poison stream s2"], T0 + timedelta(seconds=1))
    assert _lines(caplog) == [f"alert: {NO_CAPACITY}", "alert: poison stream s2"]
    # s1's condition ends; a minute later it is back: a new line, not a silent repeat
    lines.log(["poison stream s2"], T0 + timedelta(seconds=50))
    lines.log([NO_CAPACITY], T0 + timedelta(seconds=61))
    assert _lines(caplog) == [f"alert: {NO_CAPACITY}"]
    # within the minute nothing, however often
    for i in range(5):
        lines.log([NO_CAPACITY], T0 + timedelta(seconds=62 + i))
    assert _lines(caplog) == []
