"""docs/prometheus/alerts.yml, the alerting rules for teams that route with Alertmanager:
``promtool check rules`` and the cases of alerts_test.yml (``promtool test rules``) when
promtool is installed (scripts/setup.sh installs Debian's ``prometheus`` as root), and always
a structure check: every rule has an expression, a severity, a summary and an action, and
uses only metrics docs/metrics.md lists, so a renamed metric cannot leave a rule dead."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "prometheus" / "alerts.yml"
CASES = ROOT / "docs" / "prometheus" / "alerts_test.yml"
METRICS_MD = ROOT / "docs" / "metrics.md"
SEVERITIES = {"info", "warning", "critical"}
DURATION = re.compile(r"^\d+[smhd]$")
#: what Prometheus itself adds to every target
PROMETHEUS_OWN = {"up"}
HISTOGRAM_SERIES = ("_bucket", "_count", "_sum")


def _rules(path: Path = RULES) -> list[dict[str, Any]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def _documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `([a-z_:]+)` \|", METRICS_MD.read_text(encoding="utf-8"), re.M))


def _used_metrics(expr: str) -> set[str]:
    names = set(re.findall(r"\b(streamplane_[a-z_]+|up)\b(?=\s*[{\[)\s]|$)", expr))
    out = set()
    for name in names:
        for suffix in HISTOGRAM_SERIES:
            if name.endswith(suffix) and name.removesuffix(suffix).endswith("_seconds"):
                name = name.removesuffix(suffix)
        out.add(name)
    return out


def check_structure(path: Path = RULES) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data["groups"], list) and data["groups"]
    names = [group["name"] for group in data["groups"]]
    assert len(set(names)) == len(names) and all(n.startswith("streamplane") for n in names)
    rules = _rules(path)
    alerts = [rule["alert"] for rule in rules]
    assert len(set(alerts)) == len(alerts), "alert names are unique"
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Streamplane[A-Z][A-Za-z]+", name), name
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, name
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), name
        assert "for" not in rule or DURATION.match(str(rule["for"])), name
        labels = rule.get("labels", {})
        # a rule without a severity of its own passes on its series' (the monitor's alerts)
        severity = labels.get("severity")
        assert severity in SEVERITIES or (
            severity is None and "streamplane_alerts_firing" in rule["expr"]
        ), name
        assert labels.get("team") == "streamplane", name
        notes = rule.get("annotations", {})
        assert notes.get("summary") and notes.get("action"), name


def test_rules_are_well_formed() -> None:
    check_structure()


def test_rules_use_only_documented_metrics() -> None:
    documented = _documented_metrics()
    assert len(documented) > 30, "docs/metrics.md lists the metrics in tables"
    for rule in _rules():
        used = _used_metrics(rule["expr"])
        assert used, rule["alert"]
        missing = sorted(used - documented - PROMETHEUS_OWN)
        assert not missing, f"{rule['alert']} uses metrics docs/metrics.md does not list: {missing}"


@pytest.mark.parametrize(
    ("old", "new"),
    [("severity: critical", "severity: loud"), ("action:", "actions:"), ("for: 5m", "for: soon")],
)
def test_the_structure_check_catches_a_broken_rule(tmp_path: Path, old: str, new: str) -> None:
    path = tmp_path / "alerts.yml"
    path.write_text(RULES.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    with pytest.raises(AssertionError):
        check_structure(path)


def test_promtool_accepts_the_rules_and_passes_their_cases() -> None:
    beside = Path(sys.executable).parent / "promtool"  # where scripts/setup.sh unpacks it
    promtool = shutil.which("promtool") or (str(beside) if beside.exists() else None)
    if promtool is None:  # the structure check stands in (scripts/setup.sh installs promtool)
        check_structure()
        return
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    cases = subprocess.run(
        [promtool, "test", "rules", CASES.name],
        cwd=CASES.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cases.returncode == 0, cases.stdout + cases.stderr
