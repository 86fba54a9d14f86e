"""Replay the checked-in golden logs and fail loudly, with a diff, on any divergence.

Each ``<name>.jsonl`` (CloudEvents records, one per line) must fold to exactly the canonical
state in ``<name>.state.json``, by both ways of running the fold: ``apply`` event by event
(a persistent state per event, as the orchestrator folds) and a ``Folder`` in place (as a
replay folds); the two must also equal each other. A difference means the fold (or the
codec) changed how it reads history that already exists: fix the code, or, if the change is
intended, regenerate with ``python -m tests.golden.regen --states`` and review the diff
(docs/projections.md).
"""

from __future__ import annotations

import difflib
from functools import reduce
from pathlib import Path

import orjson
import pytest

from events import ControlEvent, decode_event
from projections.fold import Folder, apply, fold
from projections.fold.canonical import state_dumps, state_from_jsonable
from projections.fold.state import ClusterState, FindingKind

HERE = Path(__file__).parent
LOGS = sorted(HERE.glob("*.jsonl"))


def _read(path: Path) -> list[ControlEvent]:
    return [decode_event(line) for line in path.read_bytes().splitlines() if line.strip()]


def _fold(name: str) -> ClusterState:
    return fold(_read(HERE / f"{name}.jsonl"))


def test_the_golden_logs_are_there() -> None:
    names = {p.name.removesuffix(".jsonl") for p in LOGS}
    assert {"basic", "failover", "migration", "zombie_leader", "gap_and_conflicts"} <= names
    for name in names:
        assert (HERE / f"{name}.state.json").is_file(), f"{name}.state.json is missing"


def _both_drivers(events: list[ControlEvent]) -> dict[str, ClusterState]:
    """The log folded by each way of running the one driver (docs/projections.md)."""
    return {
        "apply, event by event": reduce(apply, events, ClusterState()),
        "Folder, in place": Folder().apply_all(events).state(),
    }


@pytest.mark.parametrize("log", LOGS, ids=lambda p: p.stem)
def test_golden_log_folds_to_its_expected_state(log: Path) -> None:
    expected_path = log.with_name(f"{log.stem}.state.json")
    expected = expected_path.read_bytes()
    states = _both_drivers(_read(log))
    for driver, state in states.items():
        actual = state_dumps(state, indent=True) + b"\n"
        if actual != expected:
            diff = "\n".join(
                difflib.unified_diff(
                    expected.decode().splitlines(),
                    actual.decode().splitlines(),
                    fromfile=str(expected_path.name),
                    tofile=f"fold(log): {driver}",
                    lineterm="",
                )
            )
            pytest.fail(
                f"replay of {log.name} ({driver}) diverged from {expected_path.name}:\n{diff}"
            )
    by_apply, in_place = states.values()
    assert by_apply == in_place
    assert fold(_read(log)) == in_place
    # the expected file is also a valid snapshot: it reads back into the same state
    assert state_dumps(state_from_jsonable(orjson.loads(expected)), indent=True) + b"\n" == expected


# What a reviewer checked in each expected state, stated independently of the files.


def test_basic_facts() -> None:
    s = _fold("basic")
    assert (s.seq, s.epoch, s.finding_count) == (14, 1, 0)
    assert s.desired_streams("w1") == ("cam-1", "cam-3")
    assert (s.instances["w1"].load, s.instances["w1"].max_streams) == (3, 3)
    assert all(a.status.value == "running" for a in s.streams.values())
    assert "cmd-1" in s.processed_commands


def test_failover_facts() -> None:
    s = _fold("failover")
    w1 = s.instances["w1"]
    assert (w1.incarnation, w1.failure_count, w1.past_incarnations) == ("w1.b", 1, ("w1.a",))
    assert s.streams["cam-1"].server_id == "w2"
    assert (s.streams["cam-3"].server_id, s.streams["cam-3"].incarnation) == ("w1", "w1.b")
    assert s.instances["w2"].load == 2 and s.finding_count == 0


def test_migration_facts() -> None:
    s = _fold("migration")
    assert s.streams["cam-3"].server_id == "w3" and s.streams["cam-1"].server_id == "w1"
    cam2 = s.streams["cam-2"]
    assert cam2.server_id == "w2" and cam2.migration_state is not None  # make-before-break
    assert s.desired_streams("w3") == ("cam-2", "cam-3")
    assert s.desired_streams("w2") == ("cam-2",)
    assert s.instances["w3"].load == 3 and s.instances["w3"].current_streams == 1
    assert s.rebalance is None and s.finding_count == 0


def test_zombie_leader_facts() -> None:
    s = _fold("zombie_leader")
    assert (s.epoch, s.leader_id) == (2, "orch-b")
    assert [(f.kind, f.event_id) for f in s.findings] == [
        (FindingKind.STALE_EPOCH, "zombie-1"),
        (FindingKind.STALE_EPOCH, "zombie-2"),
    ]
    assert "cam-1" in s.streams and s.streams["cam-2"].server_id == "w2"
    assert s.seq == 15 and not s.maintenance


def test_gap_and_conflicts_facts() -> None:
    s = _fold("gap_and_conflicts")
    assert [f.kind for f in s.findings] == [
        FindingKind.SEQ_GAP,
        FindingKind.CONFLICTING_SEQ,
        FindingKind.CAPACITY_EXCEEDED,
        FindingKind.TWO_OWNERS,
        FindingKind.UNKNOWN_STREAM,
        FindingKind.UNKNOWN_INSTANCE,
        FindingKind.CAPACITY_EXCEEDED,
    ]
    assert "cam-4" in s.streams and "cam-5" not in s.streams  # gap applied, conflict not
    assert s.streams["cam-4"].server_id == "w1" and s.instances["w1"].load == 4
    assert s.streams["cam-2"].server_id == "w2"
