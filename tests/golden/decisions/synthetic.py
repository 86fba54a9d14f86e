"""Write ``synthetic_phi_poison.jsonl``: a hand-made decision golden from the simulator.

    python tests/golden/decisions/synthetic.py

The real recordings beside it use the fixed failure detector and well-behaved streams; this
one covers what they do not, on the simulator of ``tests/unit/decide_sim.py`` recorded as
the orchestrator records (``Sim.record``): the phi accrual detector (so the file carries
phi windows), a poison stream parked after failing on three instances, a worker partitioned
away (suspected by its own rhythm, failed, fenced, back as a new incarnation), a consistency
check, a blind observer (maintenance mode) and an emergency recovery.

The simulator is deterministic, so running this again writes the same bytes; if it does not,
the simulator or ``decide`` changed: review ``git diff`` as for any golden.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "unit"))  # decide_sim lives with the unit tests
sys.path.insert(0, str(HERE.parents[2]))

from decide_sim import SIM_CONFIG, Sim  # noqa: E402

from control_plane.tools import decision_replay as dr  # noqa: E402
from events import commands as cmd  # noqa: E402

OUT = HERE / "synthetic_phi_poison.jsonl"
CONFIG = SIM_CONFIG.model_copy(
    update={"failure_detector": "phi", "phi_min_samples": 3, "phi_suspect": 3.0}
)
NOTES = (
    "Hand-made with tests/golden/decisions/synthetic.py (the decide simulator, one-second "
    "cycles, phi detector with 3 samples minimum, suspect_after 2 s, fail_after 4 s).",
    "Cycles 1-5: four workers register; seven streams, one of which ('poison') fails to start "
    "everywhere: it is retried on other instances and parked after failing on three.",
    "Cycles 9-15: w1 is partitioned away: suspected by its phi level, failed at fail_after, "
    "its streams move in the same decision; back, it is fenced and registers anew.",
    "Cycle 17: a repairing consistency check. Cycles 19-22: three of four workers silent: "
    "maintenance mode instead of failovers; cycle 23: an emergency recovery.",
)


def scenario(path: Path) -> Sim:
    sim = Sim(CONFIG)
    sim.liveness.phi_window = 10
    sim.record(path)
    for i in range(4):
        sim.add_worker(f"w{i}", 4, bad={"poison"})
    sim.cycle()
    for i in range(6):
        sim.register(f"s{i}")
    sim.register("poison", priority=5)
    sim.run(7)
    sim.workers["w1"].silent = True  # alive, but unheard
    sim.run(6)
    sim.workers["w1"].silent = False
    sim.run(2)
    sim.command(cmd.RunConsistencyCheck, repair=True)
    sim.run(2)
    for name in ("w0", "w2", "w3"):
        sim.workers[name].silent = True
    sim.run(4)
    sim.command(cmd.EmergencyRecovery)
    sim.run(1)
    for name in ("w0", "w2", "w3"):
        sim.workers[name].silent = False
    sim.run(3)
    return sim


def main() -> None:
    OUT.unlink(missing_ok=True)
    scenario(OUT)
    (segment,) = dr.read(OUT)
    segment.notes = [{"kind": "note", "note": text} for text in NOTES]
    dr.write(OUT, [segment])
    print(f"{OUT.name}: {len(segment.cycles)} cycles, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
