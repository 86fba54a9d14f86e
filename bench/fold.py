"""Fold benchmark: the two ways of running the one fold driver, over decoded events in memory.

    .venv/bin/python bench/fold.py [--events 200000] [--seed 0] [--passes 5]

On ``generate_history(events, seed=seed)`` (decoded, in memory), ``passes`` times, alternating:

- **in place**: ``projections.fold.fold(events)``, the batch fold the replay and ``fold_from``
  use (maps as transients, one state built at the end);
- **apply**: ``reduce(apply, events, ClusterState())``, one persistent state per event, as the
  orchestrator folds (``control_plane/decide/context.py``).

Reports the median pass of each, as events/s and us/event, wall and process CPU time (on a
shared machine the CPU time moves less), and checks that both reach the same state. The
script uses only the public fold API, so the same file measures an older checkout too
(``PYTHONPATH=<checkout> python bench/fold.py``). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from functools import reduce

from events.base import ControlEvent
from projections.fold import apply, fold
from projections.fold.state import ClusterState
from projections.testing.synthetic import generate_history

Timing = tuple[float, float]  # (wall seconds, CPU seconds)


def _timed(run: Callable[[], ClusterState]) -> tuple[ClusterState, Timing]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    state = run()
    return state, (time.perf_counter() - wall, time.process_time() - cpu)


def main(args: argparse.Namespace) -> dict[str, object]:
    events: list[ControlEvent] = generate_history(args.events, seed=args.seed)
    n = len(events)
    timings: dict[str, list[Timing]] = {"in_place": [], "apply": []}
    runs: dict[str, Callable[[], ClusterState]] = {
        "in_place": lambda: fold(events),
        "apply": lambda: reduce(apply, events, ClusterState()),
    }
    states: dict[str, ClusterState] = {}
    for _ in range(args.passes):
        for name, run in runs.items():
            states[name], timing = _timed(run)
            timings[name].append(timing)
    if states["in_place"] != states["apply"]:
        raise SystemExit("the two drivers disagree")
    out: dict[str, object] = {"events": n, "passes": args.passes}
    for name, passes in timings.items():
        wall = statistics.median(t for t, _ in passes)
        cpu = statistics.median(c for _, c in passes)
        print(
            f"{name:9s} {n / wall:10,.0f} events/s  {wall / n * 1e6:6.3f} us/event wall, "
            f"{cpu / n * 1e6:6.3f} us/event CPU  (median of {len(passes)})"
        )
        out[f"{name}_eps"] = round(n / wall)
        out[f"{name}_us"] = round(wall / n * 1e6, 3)
        out[f"{name}_cpu_us"] = round(cpu / n * 1e6, 3)
    return out


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="history length")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--passes", type=int, default=5, help="passes of each driver")
    return parser.parse_args()


if __name__ == "__main__":
    print(json.dumps(main(_args())))
