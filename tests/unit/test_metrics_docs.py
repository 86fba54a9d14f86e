"""docs/metrics.md lists exactly the metrics each process registers, with their type and
labels: every process's registry is built here as the process builds it (no Kafka, no
PostgreSQL: nothing connects) and compared with the tables of the sections it exports."""

from __future__ import annotations

import collections
import re
from collections.abc import Callable
from datetime import timedelta
from typing import NamedTuple

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from control_plane.api import ApiSettings, create_app
from control_plane.monitor.metrics import MonitorMetrics
from control_plane.monitor.metrics import Seen as MonitorSeen
from control_plane.orchestrator.metrics import OrchestratorMetrics, Seen
from control_plane.orchestrator.service import EnhancedStreamOrchestrator
from control_plane.orchestrator.settings import OrchestratorSettings
from projections.fold.state import ClusterState
from projections.io.read_store import ReadModelSettings
from projections.io.replay import ReplayResult
from projections.projector.app import FaustProjector, ProjectorSettings
from projections.read_model import ReadModelProjector
from tests.support.imports import ROOT
from worker_agent.agent import WorkerAgent
from worker_agent.settings import WorkerSettings

DOC = ROOT / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(\w+)` \| (\w+) \|([^|]*)\|", re.M)


class Row(NamedTuple):
    kind: str
    labels: frozenset[str]


def documented() -> dict[str, dict[str, Row]]:
    """section title (up to a parenthesis) -> metric -> its row."""
    out: dict[str, dict[str, Row]] = {}
    for part in re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.M)[1:]:
        title = part.splitlines()[0].split(" (")[0].strip()
        for name, kind, labels in ROW.findall(part):
            out.setdefault(title, {})[name] = Row(kind, frozenset(re.findall(r"`(\w+)`", labels)))
    return out


def _orchestrator() -> CollectorRegistry:
    return EnhancedStreamOrchestrator(OrchestratorSettings()).metrics.registry


def _worker() -> CollectorRegistry:
    return WorkerAgent(WorkerSettings(server_id="w-doc")).metrics.registry


def _projector(tmp: str) -> CollectorRegistry:
    settings = ProjectorSettings(projector_data_dir=tmp)
    return FaustProjector(settings, ReplayResult(ClusterState(), 0, 0, 0)).metrics.registry


def _read_model() -> CollectorRegistry:
    return ReadModelProjector("postgresql://u@h/db", settings=ReadModelSettings()).metrics.registry


def _api() -> CollectorRegistry:
    app = create_app(ApiSettings(database_url="postgresql://u@h/db"))
    registry: CollectorRegistry = app.state.api.registry
    return registry


def _api_with_read_model() -> CollectorRegistry:
    """``streamplane api`` as it runs by default: the read model's metrics on its port."""
    app = create_app(ApiSettings(database_url="postgresql://u@h/db"), watch_db=False)
    registry: CollectorRegistry = app.state.api.registry
    ReadModelProjector("postgresql://u@h/db", settings=ReadModelSettings(), registry=registry)
    return registry


def _monitor() -> CollectorRegistry:
    return MonitorMetrics(lambda: MonitorSeen((), {}, collections.Counter(), 0)).registry


#: each process: how its registry is built, and the sections of docs/metrics.md it exports
PROCESSES: dict[str, tuple[Callable[..., CollectorRegistry], tuple[str, ...]]] = {
    "orchestrator": (_orchestrator, ("Every process", "Orchestrator")),
    "worker": (_worker, ("Every process", "Worker")),
    "projector": (_projector, ("Every process", "Projector")),
    "read model": (_read_model, ("Every process", "Read model", "Database")),
    "monitor": (_monitor, ("Every process", "Monitor")),
    "api": (_api, ("Every process", "API", "Database")),
    "api with read model": (
        _api_with_read_model,
        ("Every process", "API", "Read model", "Database"),
    ),
}


def exported(registry: CollectorRegistry) -> dict[str, Row]:
    """metric name (a counter's with ``_total``) -> its type and the labels its samples show."""
    out: dict[str, Row] = {}
    for family in registry.collect():
        name = f"{family.name}_total" if family.type == "counter" else family.name
        out[name] = Row(family.type, _labels(family))
    return out


def _labels(family: Metric) -> frozenset[str]:
    return frozenset(k for s in family.samples for k in s.labels if k != "le")


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_the_doc_lists_what_the_process_registers(process: str, tmp_path: object) -> None:
    build, sections = PROCESSES[process]
    registry = build(str(tmp_path)) if build is _projector else build()
    doc = documented()
    rows = {name: row for section in sections for name, row in doc[section].items()}
    code = exported(registry)
    assert sorted(set(code) - set(rows)) == [], f"{process}: registered, not in docs/metrics.md"
    assert sorted(set(rows) - set(code)) == [], f"{process}: in docs/metrics.md, not registered"
    for name, row in code.items():
        assert rows[name].kind == row.kind, f"{name}: documented as {rows[name].kind}"
        # a label set shows only once the metric has samples; those it shows must be listed
        assert row.labels <= rows[name].labels, f"{name}: labels {sorted(row.labels)}"


def test_every_section_with_metrics_belongs_to_a_process() -> None:
    used = {section for _, sections in PROCESSES.values() for section in sections}
    assert sorted(set(documented()) - used) == [], "add the process to PROCESSES"


def test_metric_names_follow_the_conventions() -> None:
    for section, rows in documented().items():
        for name, row in rows.items():
            if section != "Every process":
                assert name.startswith("streamplane_"), name
            assert name.endswith("_total") == (row.kind == "counter"), name
            assert not {"stream_id", "server_id", "event_id", "id"} & row.labels, name


def test_labelled_metrics_show_their_labels_once_they_have_samples() -> None:
    """The label check above needs samples: the orchestrator's state gauges and the metrics
    with fixed label values have them before anything happened."""
    seen = Seen(False, 0.0, 0, 0)
    m = OrchestratorMetrics(lambda: seen, failover_horizon=timedelta(minutes=1))
    labels = exported(m.registry)
    assert labels["streamplane_instances"].labels == {"status"}
    assert labels["streamplane_streams"].labels == {"status"}
