"""docs/grafana/streamplane.json: a Grafana dashboard that loads (valid JSON, the panel
model Grafana reads) and queries only metrics that docs/metrics.md documents."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support.imports import ROOT

DASHBOARD = ROOT / "docs" / "grafana" / "streamplane.json"
METRICS_DOC = ROOT / "docs" / "metrics.md"
#: a metric name in PromQL (label names and functions never start with these)
NAME = re.compile(r"\b(?:streamplane|process|python)_[a-z0-9_]+\b")
#: the series a histogram ``name`` exports besides itself
HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def _documented() -> dict[str, str]:
    """metric -> its type, from the tables of docs/metrics.md."""
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|", METRICS_DOC.read_text(encoding="utf-8"), re.M)
    return dict(rows)


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def test_the_dashboard_is_a_grafana_model() -> None:
    data = _dashboard()
    assert data["title"] and data["uid"] and isinstance(data["schemaVersion"], int)
    variables = {v["name"]: v for v in data["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in _panels():
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert expr.count("(") == expr.count(")"), (panel["title"], expr)
            assert expr.count("{") == expr.count("}"), (panel["title"], expr)


def _queried() -> dict[str, set[str]]:
    """metric name as written in a query -> the panels that query it."""
    out: dict[str, set[str]] = {}
    for panel in _panels():
        for target in panel["targets"]:
            for name in NAME.findall(target["expr"]):
                out.setdefault(name, set()).add(panel["title"])
    return out


def _base(name: str, documented: dict[str, str]) -> str:
    for suffix in HISTOGRAM_SERIES:
        base = name.removesuffix(suffix)
        if base != name and documented.get(base) == "histogram":
            return base
    return name


def test_every_metric_the_dashboard_queries_is_documented() -> None:
    documented = _documented()
    assert documented, f"no metric table in {METRICS_DOC}"
    queried = _queried()
    assert len(queried) >= 20, sorted(queried)
    unknown = {n: sorted(p) for n, p in queried.items() if _base(n, documented) not in documented}
    assert not unknown, f"queried but not in docs/metrics.md: {unknown}"


def test_the_dashboard_covers_what_the_issue_asks_to_see() -> None:
    queried = {_base(n, _documented()) for n in _queried()}
    wanted = {
        "streamplane_instances",
        "streamplane_streams",
        "streamplane_migrations_in_flight",
        "streamplane_failovers_total",
        "streamplane_failover_seconds",
        "streamplane_rebalance_plans_total",
        "streamplane_command_decision_seconds",
        "streamplane_decision_transaction_seconds",
        "streamplane_orchestrator_cycle_seconds",
        "streamplane_heartbeat_backlog_seconds",
        "streamplane_dead_letters_total",
        "streamplane_worker_streams_running",
        "process_resident_memory_bytes",
        "streamplane_event_loop_lag_seconds",
    }
    assert wanted <= queried, sorted(wanted - queried)
