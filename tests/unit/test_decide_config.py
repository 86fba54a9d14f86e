"""DecideConfig defaults and validation (the balancer's thresholds included), the process
settings' mapping from the environment, and Liveness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from ipaddress import IPv4Address

import pytest
from decide_sim import cluster
from pydantic import ValidationError

from control_plane.decide.balancer import BalancerConfig
from control_plane.decide.config import DecideConfig
from control_plane.decide.liveness import Liveness
from control_plane.orchestrator.settings import OrchestratorSettings
from events import commands as cmd
from events import control as ev
from events.heartbeat import Heartbeat

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_defaults_match_the_documented_values() -> None:
    c = DecideConfig()
    assert (c.suspect_after, c.fail_after) == (timedelta(seconds=2.5), timedelta(seconds=5))
    assert (c.mass_failure_share, c.mass_failure_min) == (0.5, 3)
    assert c.observer_max_lag == timedelta(seconds=3)
    assert (c.max_in_flight, c.max_in_flight_per_instance) == (64, 8)
    assert c.migration_timeout == timedelta(seconds=30) and c.poison_threshold == 3
    assert (c.quarantine_after, c.flap_window) == (3, timedelta(minutes=5))
    assert (c.quarantine_base, c.quarantine_max) == (timedelta(seconds=30), timedelta(minutes=10))
    assert c.auto_rebalance and c.rebalance_cooldown == timedelta(seconds=10)
    assert c.failure_detector == "fixed" and c.phi_suspect == 8.0
    assert (c.phi_min_std, c.phi_acceptable_pause) == (
        timedelta(milliseconds=100),
        timedelta(seconds=1),
    )
    assert c.phi_min_samples == 10
    b = c.balancer
    assert (b.imbalance_threshold, b.imbalance_min_weight) == (0.10, 1)
    assert (b.candidate_limit, b.max_moves) == (8, 200_000)
    assert OrchestratorSettings().decide_config() == c


@pytest.mark.parametrize(
    "bad",
    [{"mass_failure_share": 0}, {"mass_failure_share": 1.5}, {"max_in_flight": 0},
     {"poison_threshold": 0}, {"unknown": 1}, {"failure_detector": "gossip"},
     {"phi_suspect": 0.5}, {"phi_suspect": 51}, {"phi_min_std": timedelta(0)},
     {"phi_acceptable_pause": timedelta(seconds=-1)}, {"phi_min_samples": 1},
     {"balancer": {"imbalance_threshold": 0}}, {"balancer": {"candidate_limit": 0}},
     {"balancer": {"imbalance_min_weight": -1}}, {"balancer": {"max_moves": -1}},
     {"balancer": {"unknown": 1}}],
)  # fmt: skip
def test_invalid_config_is_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        DecideConfig(**bad)


def test_process_settings_map_onto_decide_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPLANE_FAIL_AFTER", "7.5")
    monkeypatch.setenv("STREAMPLANE_MAX_IN_FLIGHT", "3")
    monkeypatch.setenv("STREAMPLANE_AUTO_REBALANCE", "false")
    c = OrchestratorSettings().decide_config()
    assert c.fail_after == timedelta(seconds=7.5) and c.max_in_flight == 3
    assert not c.auto_rebalance and c.suspect_after == timedelta(seconds=2.5)


def test_phi_settings_map_onto_decide_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPLANE_FAILURE_DETECTOR", "phi")
    monkeypatch.setenv("STREAMPLANE_PHI_SUSPECT", "10")
    monkeypatch.setenv("STREAMPLANE_PHI_WINDOW", "50")
    monkeypatch.setenv("STREAMPLANE_PHI_MIN_STD_MS", "250")
    monkeypatch.setenv("STREAMPLANE_PHI_ACCEPTABLE_PAUSE_MS", "0")
    monkeypatch.setenv("STREAMPLANE_PHI_MIN_SAMPLES", "5")
    s = OrchestratorSettings()
    c = s.decide_config()
    assert c.failure_detector == "phi" and c.phi_suspect == 10.0
    assert c.phi_min_std == timedelta(milliseconds=250)
    assert c.phi_acceptable_pause == timedelta(0) and c.phi_min_samples == 5
    assert s.liveness_phi_window() == 50
    assert OrchestratorSettings(failure_detector="fixed").liveness_phi_window() == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FAILURE_DETECTOR": "gossip"}, "failure_detector"),
        ({"PHI_WINDOW": "1"}, "phi_window"),
        ({"PHI_MIN_STD_MS": "0"}, "phi_min_std_ms"),
        ({"PHI_ACCEPTABLE_PAUSE_MS": "-5"}, "phi_acceptable_pause_ms"),
        ({"PHI_SUSPECT": "0"}, "phi_suspect"),
        (
            {"PHI_WINDOW": "20", "PHI_MIN_SAMPLES": "30"},
            "phi_min_samples .30. must be <= phi_window",
        ),
    ],
)
def test_invalid_phi_settings_are_refused_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(f"STREAMPLANE_{k}", v)
    with pytest.raises(ValidationError, match=message):
        OrchestratorSettings()


def test_balancer_settings_come_from_the_environment_into_decide_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMPLANE_BALANCER_IMBALANCE_THRESHOLD", "0.25")
    monkeypatch.setenv("STREAMPLANE_BALANCER_IMBALANCE_MIN_WEIGHT", "0")
    monkeypatch.setenv("STREAMPLANE_BALANCER_CANDIDATE_LIMIT", "3")
    monkeypatch.setenv("STREAMPLANE_BALANCER_MAX_MOVES", "40")
    assert OrchestratorSettings().decide_config().balancer == BalancerConfig(
        imbalance_threshold=0.25, imbalance_min_weight=0, candidate_limit=3, max_moves=40
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [("IMBALANCE_THRESHOLD", "0"), ("IMBALANCE_MIN_WEIGHT", "-1"), ("CANDIDATE_LIMIT", "0"),
     ("MAX_MOVES", "-1"), ("CANDIDATE_LIMIT", "many")],
)  # fmt: skip
def test_invalid_balancer_settings_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"STREAMPLANE_BALANCER_{name}", value)
    with pytest.raises(ValidationError, match=f"balancer_{name.lower()}"):
        OrchestratorSettings()


def test_the_process_settings_keep_the_balancer_config_defaults_and_bounds() -> None:
    """One place states each bound; the settings repeat it: this keeps the two equal."""
    fields = OrchestratorSettings.model_fields
    for name, spec in BalancerConfig.model_fields.items():
        mirror = fields[f"balancer_{name}"]
        assert (mirror.default, mirror.metadata) == (spec.default, spec.metadata), name


def test_decide_reads_the_balancer_thresholds_from_its_config_not_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMPLANE_BALANCER_MAX_MOVES", "1")  # the core must not see it
    sim = cluster(6, 6, streams=6)
    sim.add_worker("w2", 6)  # an empty newcomer: a plan moves two streams to it
    sim.run(2)

    def planned(config: DecideConfig) -> int:
        sim.config = config
        sim.command(cmd.RequestRebalance, dry_run=True)
        (plan,) = [e for e in sim.cycle().events if isinstance(e, ev.RebalancePlanned)]
        return len(plan.moves)

    default = sim.config
    assert planned(default) == 2
    assert planned(default.model_copy(update={"balancer": BalancerConfig(max_moves=1)})) == 1


def _hb(incarnation: str) -> Heartbeat:
    return Heartbeat(
        id="h", source="w", time=T0, server_id="w0", incarnation=incarnation,
        ip=IPv4Address("127.0.0.1"), port=1, max_streams=1,
    )  # fmt: skip


def test_liveness_counts_silence_per_incarnation() -> None:
    live = Liveness(watch_started_at=T0)
    live.observe(_hb("a"), T0 + timedelta(seconds=10))
    now = T0 + timedelta(seconds=13)
    assert live.last_seen("w0", "a") == T0 + timedelta(seconds=10)
    assert live.silence("w0", "a", None, now) == timedelta(seconds=3)
    # another incarnation never heard: from registration or watch start, whichever is later
    assert live.last_seen("w0", "b") is None
    assert live.silence("w0", "b", T0 + timedelta(seconds=5), now) == timedelta(seconds=8)
    assert live.silence("w0", "b", T0 - timedelta(hours=1), now) == timedelta(seconds=13)
    assert live.watched_for(now) == timedelta(seconds=13)
