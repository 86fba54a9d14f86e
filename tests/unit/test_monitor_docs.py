"""docs/alerts.md stays true: every rule the monitor can fire and every setting it reads is
documented there, and its example record of the alerts topic decodes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson

from control_plane.alerts.rules import RULES
from control_plane.monitor.settings import MonitorSettings
from events.alerts import AlertFired
from events.codec import decode_alert

ROOT = Path(__file__).resolve().parents[2]
ALERTS_MD = (ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
#: the rule of each function of control_plane.alerts.rules (a rule yields keys ``rule:...``)
FUNCTION_RULES = {
    "instance_flapping": "instance_flapping",
    "zone_failures": "zone_failures",
    "streams_unassigned": "streams_unassigned",
    "poison_streams": "poison_stream",
    "maintenance_mode": "maintenance_mode",
    "long_transactions": "long_db_transactions",
    "dead_letters": "dead_letters",
    "rejected_commands": "command_rejected",
    "refused_heartbeats": "heartbeat_refused",
}


def _rule_rows() -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \(`:", ALERTS_MD, re.M))


def test_every_rule_has_a_row() -> None:
    learned = {spec.rule for spec in MonitorSettings().alert_config().signals}
    pattern_rules = {FUNCTION_RULES[f.__name__] for f in RULES if f.__name__ in FUNCTION_RULES}
    assert {f.__name__ for f in RULES} - set(FUNCTION_RULES) == {"learned_signals"}
    assert _rule_rows() == learned | pattern_rules


def test_every_setting_is_documented() -> None:
    table = ALERTS_MD.split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = {
        name.lower()
        for cell in re.findall(r"^\| ([^|]+) \|", table, re.M)
        for name in re.findall(r"`([A-Z_]+)`", cell)
    }
    assert set(MonitorSettings.model_fields) - documented == set()


def test_the_example_record_decodes() -> None:
    blocks = re.findall(r"```json\n(.*?)```", ALERTS_MD, re.S)
    (record,) = [json.loads(b) for b in blocks if '"AlertFired"' in b]
    message = decode_alert(orjson.dumps(record))
    assert isinstance(message, AlertFired)
    assert message.key == record["subject"] and message.rule == message.key.partition(":")[0]
