"""Decision recordings: what the recorder writes replays through ``decide`` exactly, also
trimmed to a window; a changed decision is reported with a readable diff; recording never
stops the leader (docs/orchestrator.md, "Decision goldens")."""

from __future__ import annotations

from pathlib import Path

import orjson
from decide_sim import SIM_CONFIG, START, Sim, cluster

from control_plane.decide.liveness import Liveness
from control_plane.orchestrator.recorder import DecisionRecorder
from control_plane.tools import decision_replay as dr
from events import commands as cmd

PHI = SIM_CONFIG.model_copy(update={"failure_detector": "phi", "phi_min_samples": 3})


def _failover(path: Path) -> Sim:
    """Three workers, six streams, a crash and its failover, a drain; all recorded."""
    sim = Sim(PHI)
    sim.liveness.phi_window = 5
    sim.record(path)
    for i in range(3):
        sim.add_worker(f"w{i}", 4)
    sim.cycle()
    for i in range(6):
        sim.register(f"s{i}")
    sim.run(6)
    sim.crash("w1")
    sim.run(6)
    sim.command(cmd.DrainInstance, server_id="w0")
    sim.run(6, check_balance=True)
    return sim


def test_a_recorded_run_replays_identically(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    sim = _failover(path)
    (segment,) = dr.read(path)
    assert len(segment.cycles) == len(sim.decisions) == 19
    assert dr.check(segment) is None
    recorded = [x["event"]["id"] for c in segment.cycles for x in c.outputs if x["kind"] == "event"]
    assert recorded == [e.id for d in sim.decisions for e in d.events]
    kinds = {x["kind"] for c in segment.cycles for x in c.inputs + c.outputs}
    assert {"observed", "command", "event", "desired", "alert"} <= kinds


def test_a_window_of_a_recording_replays_from_the_state_and_liveness_before_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "run.jsonl"
    sim = _failover(path)
    (segment,) = dr.read(path)
    window = dr.trim(segment, 9, 14)  # from just before the failure on
    assert [c.n for c in window.cycles] == [9, 10, 11, 12, 13, 14]
    # the term started a new log: the window starts from that log and the events before it
    log = [x["event"]["id"] for x in window.header if x["kind"] == "log"]
    assert log == [e.id for e in sim.log[: len(log)]]
    assert len(log) == 1 + sum(len(d.events) for d in sim.decisions[:8])
    intervals = [x for x in window.header if x.get("intervals_us")]
    assert intervals, "the phi windows known before the window are carried over"
    assert dr.check(window) is None
    dr.write(tmp_path / "window.jsonl", [window])
    assert dr.check(dr.read(tmp_path / "window.jsonl")[0]) is None


def test_a_changed_decision_is_reported_with_the_cycle_and_a_diff(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    _failover(path)
    (segment,) = dr.read(path)
    segment.header[0]["config"]["fail_after"] = "PT6S"  # as if decide failed later
    divergence = dr.check(segment)
    assert divergence is not None
    assert "InstanceFailed w1" in divergence.diff.splitlines()[0]  # the recorded side
    assert '-    "type": "InstanceFailed"' in divergence.diff
    assert f"cycle {divergence.cycle}" in str(divergence)
    # after an intended change, regenerating makes the file agree again
    regenerated = dr.regenerate(segment)
    assert dr.check(regenerated) is None
    assert (
        regenerated.cycles[divergence.cycle - 1].outputs
        != segment.cycles[divergence.cycle - 1].outputs
    )


def test_the_heartbeats_decide_got_are_kept_apart_from_those_observed(tmp_path: Path) -> None:
    """A poll that read two heartbeats of a server hands decide the latest; the liveness
    observed both (phi learns from both)."""
    sim = cluster(4, 4)
    path = tmp_path / "run.jsonl"
    rec = sim.record(path)  # mid-term: the recording starts from the canonical state
    w0 = sim.workers["w0"]
    early = w0.heartbeat(id_="early", now=sim.now)
    sim.liveness.observe(early, sim.now)  # read by the same poll as the cycle's own
    sim.cycle()
    (segment,) = dr.read(path)
    (cycle,) = segment.cycles
    observed = [x["heartbeat"]["id"] for x in cycle.inputs if x["kind"] == "observed"]
    assert observed[0] == "early" and len(observed) == 3
    given = [observed[i] for i in cycle.head["heartbeats"]]
    assert "early" not in given and len(given) == 2
    assert [x["kind"] for x in segment.header][:2] == ["start", "state"]
    assert dr.check(segment) is None
    rec.stop("done")
    assert dr.read(path)[0].end == {"kind": "end", "reason": "done"}


def test_a_moved_watch_start_is_recorded_and_replayed(tmp_path: Path) -> None:
    sim = cluster(4, 4, 4, streams=3)
    path = tmp_path / "run.jsonl"
    sim.record(path)
    sim.crash("w2")
    sim.run(2)
    sim.liveness.watch_started_at = sim.now  # the shell re-baselines after a blind spot
    sim.run(6)
    (segment,) = dr.read(path)
    moved = [c.n for c in segment.cycles if "watch_started_at" in c.head]
    assert moved == [3]
    assert dr.check(segment) is None
    failed_at = [c.n for c in segment.cycles for x in c.outputs if _type(x) == "InstanceFailed"]
    assert failed_at == [6]  # no failure before watching for fail_after (4 s) from cycle 2
    del segment.cycles[2].head["watch_started_at"]
    divergence = dr.check(segment)  # without it, w2 (silent since cycle 0) fails in cycle 4
    assert divergence is not None and divergence.cycle == 4


def test_a_recorder_that_cannot_write_stops_recording_without_raising(tmp_path: Path) -> None:
    sim = cluster(4)
    rec = sim.record(tmp_path)  # a directory: every append fails
    sim.run(2)
    assert sim.liveness.journal is None and rec._broken
    rec.start(state=sim.state, config=sim.config, source="t")  # a later term: still off
    sim.run(1)
    assert sim.liveness.journal is None


def test_no_recorder_when_the_setting_is_off(tmp_path: Path) -> None:
    live = Liveness(watch_started_at=START)
    assert DecisionRecorder.open(None, live) is None
    assert DecisionRecorder.open(tmp_path / "x.jsonl", live) is not None
    assert live.journal is None  # journaling starts with a term, not with the recorder


def test_every_line_names_its_kind_first(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    _failover(path)
    for raw in path.read_bytes().splitlines():
        assert raw.startswith(b'{"kind":"'), raw[:40]
        assert orjson.loads(raw)["kind"] in {
            "start", "log", "state", "sighting", "cycle", "observed", "heartbeat", "command",
            "event", "desired", "alert", "dropped", "end",
        }  # fmt: skip


def _type(line: dict[str, object]) -> object:
    body = line.get("event")
    return body.get("type") if isinstance(body, dict) else None
