"""The monitor's settings (control_plane.monitor.settings): read from the environment once,
every bound of the rules a named setting, bad values refused naming the field, and webhook
URLs never repeated in errors or logs (their path often is their secret)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from pydantic import ValidationError

from control_plane.alerts import AlertConfig
from control_plane.alerts.model import DEFAULT_SIGNALS
from control_plane.monitor.settings import DATABASE_DOWN, MonitorSettings, redact


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("STREAMPLANE_")]:
        monkeypatch.delenv(key)


def test_defaults_are_the_engines_defaults() -> None:
    config = MonitorSettings().alert_config()
    engine = AlertConfig()
    for name in ("flap_window", "flap_count", "zone_window", "zone_count", "unassigned_for",
                 "poison_instances", "reject_window", "reject_count", "dead_letter_window",
                 "long_transactions_max", "resolve_after", "rate_window", "rate_max"):  # fmt: skip
        assert getattr(config, name) == getattr(engine, name), name
    by_name = {s.name: s for s in config.signals}
    for spec in DEFAULT_SIGNALS:
        assert by_name[spec.name].baseline == spec.baseline, spec.name
    assert by_name[DATABASE_DOWN].rule == "database_unreachable"


def test_every_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPLANE_ALERT_ZONE_WINDOW", "8")
    monkeypatch.setenv("STREAMPLANE_ALERT_RESOLVE_AFTER", "1.5")
    monkeypatch.setenv("STREAMPLANE_ALERT_LAG_BOUND", "25")
    monkeypatch.setenv("STREAMPLANE_ALERT_WARMUP", "3")
    monkeypatch.setenv("STREAMPLANE_MONITOR_INTERVAL", "0.5")
    monkeypatch.setenv("STREAMPLANE_MONITOR_WEBHOOKS", "http://127.0.0.1:9/a, https://hooks.x/T/B")
    s = MonitorSettings()
    config = s.alert_config()
    assert config.zone_window == timedelta(seconds=8)
    assert config.resolve_after == timedelta(seconds=1.5)
    lags = [x for x in config.signals if x.name.endswith("lag_seq")]
    assert [x.baseline.bound for x in lags] == [25, 25]
    assert {x.baseline.warmup for x in config.signals if x.name != DATABASE_DOWN} == {3}
    assert s.monitor_interval == 0.5
    assert s.monitor_webhooks == ("http://127.0.0.1:9/a", "https://hooks.x/T/B")
    monkeypatch.setenv("STREAMPLANE_MONITOR_WEBHOOKS", '["http://a/1", "http://b/2"]')
    assert MonitorSettings().monitor_webhooks == ("http://a/1", "http://b/2")


def test_the_projector_group_follows_the_projectors_own_setting() -> None:
    assert MonitorSettings(topic_prefix="p1").projector_group == "p1-projector"
    assert MonitorSettings(projector_id="proj-x").projector_group == "proj-x"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("monitor_interval", 0),
        ("monitor_heartbeat_quantile", 1.5),
        ("alert_zone_count", 0),
        ("alert_resolve_after", -1),
        ("monitor_webhook_attempts", 0),
        ("metrics_address", "not a port"),
    ],
)
def test_a_bad_value_names_its_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        MonitorSettings(**{field: value})
    assert caught.value.errors()[0]["loc"][0] == field


def test_a_bad_webhook_url_is_refused_without_repeating_its_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        MonitorSettings(monitor_webhooks="ftp://user:pw@hooks.example/T000/SECRET")
    error = caught.value.errors()[0]
    assert error["loc"] == ("monitor_webhooks",)
    assert "SECRET" not in error["msg"] and "pw" not in error["msg"]
    assert "ftp://hooks.example/…" in error["msg"]


def test_redact_keeps_scheme_host_and_port_only() -> None:
    assert (
        redact("https://u:p@hooks.example:8443/T/B/XYZ?token=1") == "https://hooks.example:8443/…"
    )
    assert redact("http://127.0.0.1:9000") == "http://127.0.0.1:9000"
