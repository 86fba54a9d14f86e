"""The monitor's alerts as messages (control_plane.monitor.messages): the record of each
transition, and the engine rebuilt from the topic's latest records, which must fire nothing
again that already fires and still resolve it once its condition is clear."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from control_plane.alerts import (
    Alert,
    AlertConfig,
    AlertManager,
    AlertStatus,
    Observation,
    Severity,
)
from control_plane.monitor.messages import (
    evidence_map,
    evidence_text,
    from_message,
    restore,
    to_message,
)
from events.alerts import AlertFired, AlertResolved, firing, fold_alerts
from events.codec import decode_alert, encode
from projections.fold.state import ClusterState

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = "long_db_transactions:cluster"
CONFIG = AlertConfig(resolve_after=timedelta(seconds=10))


def observe(tx: float) -> Observation:
    return Observation(ClusterState(), (), {"long_db_transactions": tx})


def fired(manager: AlertManager, tx: float, at: float) -> tuple[AlertManager, tuple[Alert, ...]]:
    return manager.evaluate(observe(tx), now=T0 + timedelta(seconds=at))


def test_evidence_becomes_short_texts() -> None:
    assert evidence_text("eu-1a") == "eu-1a"
    assert evidence_text(("w-1", "w-2")) == "w-1,w-2"
    assert evidence_text(3) == "3"
    assert evidence_text(0.25) == "0.25"
    assert evidence_text(3.0) == "3"
    assert evidence_text(True) == "true"
    assert evidence_map((("bound", None), ("count", 2))) == {"count": "2"}


def test_a_transition_becomes_a_record_that_decodes_to_itself() -> None:
    _, (alert,) = fired(AlertManager(CONFIG), 2, 0)
    message = to_message(alert, message_id="m-1")
    assert isinstance(message, AlertFired)
    assert (message.key, message.rule, message.about) == (KEY, "long_db_transactions", "cluster")
    assert message.severity.value == alert.severity.value
    assert message.evidence == {"count": "2", "allowed": "0"}
    assert message.time == alert.at and message.seq == alert.seq
    wire = orjson.loads(encode(message))
    assert wire["subject"] == KEY and wire["seq"] == alert.seq and "epoch" not in wire
    assert decode_alert(encode(message)) == message


def test_a_resolution_is_an_alert_resolved() -> None:
    manager, _ = fired(AlertManager(CONFIG), 2, 0)
    manager, none = fired(manager, 0, 1)
    manager, (resolved,) = fired(manager, 0, 12)
    assert none == () and resolved.status is AlertStatus.RESOLVED
    assert isinstance(to_message(resolved, message_id="m-2"), AlertResolved)


def test_from_message_gives_the_engine_its_alert_back() -> None:
    _, (alert,) = fired(AlertManager(CONFIG), 2, 0)
    back = from_message(to_message(alert, message_id="m-1"))
    assert back._replace(evidence=alert.evidence) == alert
    assert dict(back.evidence) == {"count": "2", "allowed": "0"}


def test_a_restored_engine_does_not_fire_again_and_still_resolves() -> None:
    _, (alert,) = fired(AlertManager(CONFIG), 2, 0)
    latest = fold_alerts({}, [to_message(alert, message_id="m-1")])
    manager = restore(latest, CONFIG)
    assert [a.key for a in manager.firing()] == [KEY]
    manager, out = fired(manager, 3, 30)  # still holds: nothing to publish
    assert out == ()
    manager, out = fired(manager, 0, 31)
    assert out == ()  # clear, but not for resolve_after yet
    manager, (resolved,) = fired(manager, 0, 42)
    assert resolved.status is AlertStatus.RESOLVED and resolved.key == KEY
    assert manager.firing() == ()


def test_a_fresh_engine_would_fire_twice_which_is_what_restore_prevents() -> None:
    _, (first,) = fired(AlertManager(CONFIG), 2, 0)
    _, (again,) = fired(AlertManager(CONFIG), 2, 30)  # a restart without the topic
    assert first.key == again.key == KEY


def test_only_keys_whose_latest_record_fires_are_restored() -> None:
    manager, (alert,) = fired(AlertManager(CONFIG), 2, 0)
    manager, _ = fired(manager, 0, 1)
    _, (resolved,) = fired(manager, 0, 12)
    records = [to_message(alert, message_id="a"), to_message(resolved, message_id="b")]
    latest = fold_alerts({}, records)
    assert firing(latest) == []
    assert restore(latest, CONFIG).firing() == ()
    _, out = fired(restore(latest, CONFIG), 2, 13)
    assert [a.status for a in out] == [AlertStatus.FIRING]


def test_firing_lists_the_worst_first() -> None:
    def record(key: str, severity: Severity) -> AlertFired:
        alert = Alert(key, severity, "s", (), "a", 1, AlertStatus.FIRING, T0)
        message = to_message(alert, message_id=key)
        assert isinstance(message, AlertFired)
        return message

    latest = fold_alerts(
        {},
        [
            record("dead_letters:cluster", Severity.WARNING),
            record("zone_failures:z1", Severity.CRITICAL),
            record("instance_flapping:w1", Severity.WARNING),
        ],
    )
    assert [m.key for m in firing(latest)] == [
        "zone_failures:z1",
        "dead_letters:cluster",
        "instance_flapping:w1",
    ]


@pytest.mark.parametrize("long_text", ["x" * 5000])
def test_texts_are_cut_to_the_contracts_limit(long_text: str) -> None:
    alert = Alert(KEY, Severity.WARNING, long_text, (("e", long_text),), long_text, 1,
                  AlertStatus.FIRING, T0)  # fmt: skip
    message = to_message(alert, message_id="m")
    assert len(message.summary) == len(message.action) == len(message.evidence["e"]) == 4096
