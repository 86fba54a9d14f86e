"""Both folds of one control log, side by side: ``examples/reference_fold.py`` (written from
docs/contract.md, no streamplane import) and ``projections.fold.fold``, each cut down to the
fields the contract covers (its section 7), for the unit and the integration tests.

Both read the same wire lines: the reference parses the JSON itself, streamplane decodes with
``events.decode_event`` and skips what it cannot decode, as its readers do.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from events import EventError, decode_event, encode
from events.base import ControlEvent
from projections.fold import fold
from projections.fold.rules import FINDINGS_KEPT
from projections.fold.state import ClusterState

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "reference_fold.py"
CONTRACT = ROOT / "docs" / "contract.md"
GOLDEN_LOGS = sorted((ROOT / "tests" / "golden").glob("*.jsonl"))


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reference_fold", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _load()


def projection(state: ClusterState, undecodable: int) -> dict[str, Any]:
    """streamplane's state, cut down to what docs/contract.md covers (section 7's shape)."""
    plan = state.rebalance
    return {
        "seq": state.seq,
        "epoch": state.epoch,
        "leader_id": state.leader_id,
        "findings": [[f.seq, f.kind.value] for f in state.findings],
        "finding_count": state.finding_count,
        "maintenance": state.maintenance,
        "rebalance": None
        if plan is None
        else {
            "plan_id": plan.plan_id,
            "started": sorted(plan.started),
            "completed": plan.completed,
            "aborted": plan.aborted,
        },
        "undecodable": undecodable,
        "enrolled": {
            k: {"key_id": e.key_id, "revoked": e.revoked_at is not None}
            for k, e in sorted(state.enrolled.items())
        },
        "instances": {
            k: {
                "incarnation": i.incarnation,
                "status": i.status.value,
                "max_streams": i.max_streams,
                "draining": i.draining,
                "drained": i.drained_at is not None,
                "load": i.load,
                "owned": i.current_streams,
            }
            for k, i in sorted(state.instances.items())
        },
        "streams": {
            k: {
                "weight": s.weight,
                "status": s.status.value,
                "owner": s.server_id,
                "incarnation": s.incarnation,
                "failed_on": list(s.failed_on),
                "migration": None
                if s.migration_state is None
                else {
                    "migration_id": s.migration_state.migration_id,
                    "to_server": s.migration_state.to_server,
                    "to_incarnation": s.migration_state.to_incarnation,
                    "plan_id": s.migration_state.plan_id,
                },
            }
            for k, s in sorted(state.streams.items())
        },
    }


def streamplane_fold(lines: list[str]) -> dict[str, Any]:
    events: list[ControlEvent] = []
    undecodable = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            events.append(decode_event(line))
        except EventError:
            undecodable += 1
    return projection(fold(events), undecodable)


def reference_fold(lines: list[str]) -> dict[str, Any]:
    state: dict[str, Any] = reference.Fold().feed(lines).state()
    state["findings"] = state["findings"][-FINDINGS_KEPT:]  # streamplane keeps the last ones
    return state


def assert_agree(lines: list[str]) -> dict[str, Any]:
    ours, theirs = streamplane_fold(lines), reference_fold(lines)
    for key in ours:  # one key at a time: a readable difference
        assert theirs[key] == ours[key], f"{key}: reference {theirs[key]!r} != fold {ours[key]!r}"
    assert theirs == ours
    return ours


def wire(events: list[ControlEvent]) -> list[str]:
    return [encode(e).decode() for e in events]
