"""Replay the checked-in decision goldens through ``decide``; fail loudly, with a diff, on any
divergence (docs/orchestrator.md, "Decision goldens").

Each ``*.jsonl`` here is a recorded orchestrator run (or a hand-made one): per cycle the
inputs ``decide`` was handed and the events and desired sets it returned. A divergence means
``decide`` would now decide differently on the same inputs: fix the code, or, if the change
is intended, ``python -m control_plane.tools.decisions regen tests/golden/decisions/*.jsonl``
and review ``git diff``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from control_plane.tools import decision_replay as dr

HERE = Path(__file__).parent
GOLDENS = sorted(HERE.glob("*.jsonl"))
REGEN = "python -m control_plane.tools.decisions regen tests/golden/decisions/*.jsonl"


def test_the_decision_goldens_are_there() -> None:
    names = {p.stem for p in GOLDENS}
    assert {"demo_failover", "drain_rebalance", "synthetic_phi_poison"} <= names
    for path in GOLDENS:
        assert path.stat().st_size < 400_000, f"{path.name}: keep goldens small"
        for segment in dr.read(path):
            assert segment.notes, f"{path.name}: say what a reviewer checked in it"
            # a log, not a canonical state: a later layout of the state still folds it
            kinds = {x["kind"] for x in segment.header}
            assert "log" in kinds and "state" not in kinds, path.name


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_golden_replays_identically(path: Path) -> None:
    for k, segment in enumerate(dr.read(path), 1):
        divergence = dr.check(segment)
        if divergence is not None:
            pytest.fail(
                f"{path.name}, term {k}: {divergence}\n\nIf intended: {REGEN}, then review "
                "git diff tests/golden/decisions",
                pytrace=False,
            )


def test_a_changed_threshold_shows_up_as_a_diff_at_the_failover() -> None:
    """The check is not vacuous: a later fail_after moves the failover out of its cycle."""
    (segment,) = dr.read(HERE / "demo_failover.jsonl")
    segment.header[0]["config"]["fail_after"] = "PT6S"
    divergence = dr.check(segment)
    assert divergence is not None and divergence.cycle == 169
    assert divergence.diff.splitlines()[1] == "decide now: (nothing)"


# What a reviewer checked in each golden, stated independently of the files.


def _events(name: str) -> dict[int, list[dict[str, Any]]]:
    (segment,) = dr.read(HERE / f"{name}.jsonl")
    return {c.n: [x["event"] for x in c.outputs if x["kind"] == "event"] for c in segment.cycles}


def _brief(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["type"], e["subject"]) for e in events]


def test_demo_failover_facts() -> None:
    ev = _events("demo_failover")
    assert _brief(ev[142]) == [("InstanceSuspected", "worker-2")]
    failed, *moved = ev[169]
    assert (failed["type"], failed["data"]["server_id"]) == ("InstanceFailed", "worker-2")
    # both of its streams move in the same decision (one transaction), to live workers
    assert {(e["subject"], e["data"]["server_id"]) for e in moved} == {
        ("stream-2", "worker-3"),
        ("stream-5", "worker-1"),
    }
    started = [s for n in range(170, 175) for t, s in _brief(ev[n]) if t == "StreamStarted"]
    assert sorted(started) == ["stream-2", "stream-5"]
    # between the streams starting and the kill, the cycles decide nothing
    busy = [n for n, e in ev.items() if 20 < n < 169 and n != 142 and e]
    assert busy == []
    # the demo's shutdown: worker-1 leaves first, and of its streams those that find no room
    # are let go and wait, said once at the end of the cycle
    shutdown = _brief(ev[247])
    assert shutdown[0] == ("InstanceDeregistered", "worker-1")
    unassigned = [s for t, s in shutdown if t == "StreamUnassigned"]
    assert unassigned == ["stream-1", "stream-4"]
    assert shutdown[-2:] == [("StreamWaiting", s) for s in unassigned]
    assert not any(t == "StreamWaiting" for n, e in ev.items() if n != 247 for t, _ in _brief(e))


def test_drain_rebalance_facts() -> None:
    (segment,) = dr.read(HERE / "drain_rebalance.jsonl")
    start = dr.start_of(segment).state  # the window starts after the streams were added
    assert {i: start.instances[i].load for i in start.instances} == {"w1": 6, "w2": 6}
    assert len(start.streams) == 12
    assert {str(s.status) for s in start.streams.values()} == {"running"}
    ev = _events("drain_rebalance")
    plans = {n: e[0]["data"] for n, e in ev.items() if e and e[0]["type"] == "RebalancePlanned"}
    assert sorted(plans) == [231, 356, 411]
    assert [(p["reason"], len(p["moves"]), p["dry_run"]) for p in plans.values()] == [
        ("imbalance", 4, False),
        ("imbalance", 4, False),
        ("operator", 0, True),
    ]
    assert {m["to_server"] for m in plans[231]["moves"]} == {"w3"}  # to the newcomer
    assert {m["to_server"] for m in plans[356]["moves"]} == {"w1"}  # back after the undrain
    drain = [e for e in ev[287] if e["type"] == "MigrationStarted"]
    assert len(drain) == 4 and {e["data"]["reason"] for e in drain} == {"drain"}
    assert {e["data"]["from_server"] for e in drain} == {"w1"}
    assert ("InstanceDrained", "w1") in _brief(ev[289])
    done = [n for n, e in ev.items() if ("RebalanceCompleted", None) in _brief(e)]
    assert done == [233, 358]
    # every planned move was started: none went stale (v2 counts those as ``skipped``)
    completed = [e for n in done for e in ev[n] if e["type"] == "RebalanceCompleted"]
    assert [(e["schemaversion"], e["data"]["skipped"]) for e in completed] == [(2, 0), (2, 0)]


def test_synthetic_phi_poison_facts() -> None:
    ev = _events("synthetic_phi_poison")
    parked = [e for e in ev[5] if e["type"] == "StreamFailed"]
    assert [(e["subject"], e["data"]["parked"]) for e in parked] == [("poison", True)]
    failed_on = {
        e["data"]["server_id"] for n in (3, 4, 5) for e in ev[n] if e["type"] == "StreamFailed"
    }
    assert len(failed_on) == 3  # three distinct instances
    # w1 silent from cycle 9: phi suspects it after 3 s (the fixed threshold would at 2 s)
    assert _brief(ev[10]) == [] and _brief(ev[11]) == [("InstanceSuspected", "w1")]
    assert _brief(ev[12])[0] == ("InstanceFailed", "w1")
    assert ("InstanceRegistered", "w1") in _brief(ev[15])
    assert ("MaintenanceModeEntered", None) in _brief(ev[21])
    recovery = _brief(ev[23])
    assert [s for t, s in recovery if t == "InstanceFailed"] == ["w0", "w2", "w3"]
    # the command's events end with leaving maintenance and its outcome; the cycle ends by
    # saying which streams found no home (three instances failed at once)
    command = [x for x in recovery if x[0] != "StreamWaiting"]
    assert command[-2:] == [("MaintenanceModeLeft", None), ("CommandCompleted", None)]
    unassigned = [s for t, s in command if t == "StreamUnassigned"]
    assert recovery[len(command) :] == [("StreamWaiting", s) for s in unassigned]
    assert unassigned == ["s3", "s5"]
