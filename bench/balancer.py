"""Benchmark of the SmartLoadBalancer: plan time, moves against the lower bound, load factors.

    .venv/bin/python bench/balancer.py [--streams 100000 --instances 1000 --runs 5 --seed 42]

Two clusters are built with a fixed seed:

* uniform: equal capacities, weight 1, 5 % of the instances newly added (empty), 1 % draining,
  the rest randomly filled;
* weighted: heterogeneous capacities, perf factors and zones, heavy-tailed weights, zone
  affinity and anti-affinity groups, a skewed initial placement, 5 % new and 1 % draining
  instances, and 2 % of the streams without an owner (their instance failed).

Each plan is timed ``--runs`` times (median reported). A naive baseline that reassigns every
stream from scratch, round-robin over the eligible instances, runs on the same input so the
figures can be read as ratios. Human-readable lines first; the LAST line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from control_plane.decide.balancer import (
    InstanceView,
    RebalancePlan,
    SmartLoadBalancer,
    StreamView,
    effective_capacity,
)

Cluster = tuple[list[InstanceView], list[StreamView]]
ZONES = ("z1", "z2", "z3")


def _roles(n: int, rng: random.Random) -> tuple[set[int], set[int]]:
    """Indices of new (empty) and draining instances: 5 % and 1 %."""
    picked = rng.sample(range(n), max(1, n // 20) + max(1, n // 100))
    return set(picked[: max(1, n // 20)]), set(picked[max(1, n // 20) :])


def uniform_cluster(streams: int, instances: int, rng: random.Random) -> Cluster:
    capacity = -(-streams * 3 // (2 * instances))  # total load at ~2/3 of capacity
    new, draining = _roles(instances, rng)
    insts = [
        InstanceView(f"inst-{n:05d}", capacity, eligible=n not in draining)
        for n in range(instances)
    ]
    holders = [i for n, i in enumerate(insts) if n not in new]
    loads: Counter[str] = Counter()
    out = []
    for k in range(streams):
        owner = rng.choice(holders)
        while loads[owner.server_id] >= capacity:
            owner = rng.choice(holders)
        loads[owner.server_id] += 1
        out.append(StreamView(f"stream-{k:07d}", owner=owner.server_id))
    return insts, out


def _weight(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.5:
        return 1
    return rng.randint(2, 5) if roll < 0.8 else rng.randint(8, 20)


def weighted_cluster(streams: int, instances: int, rng: random.Random) -> Cluster:
    weights = [_weight(rng) for _ in range(streams)]
    mean_capacity = sum(weights) / instances / 0.7  # ~70 % of the capacity in use
    new, draining = _roles(instances, rng)
    insts = [
        InstanceView(
            f"inst-{n:05d}",
            rng.randint(int(mean_capacity * 0.4), int(mean_capacity * 1.6)),
            eligible=n not in draining,
            zone=ZONES[n % 3],
            perf_factor=rng.choice((1.0,) * 7 + (0.8,) * 2 + (0.5,)),
        )
        for n in range(instances)
    ]
    holders = [i for n, i in enumerate(insts) if n not in new]
    loads: Counter[str] = Counter()
    out = []
    for k, weight in enumerate(weights):
        zone = rng.choice(ZONES) if rng.random() < 0.1 else None
        group = f"group-{k % (streams // 10 or 1)}" if rng.random() < 0.2 else None
        owner = None
        if rng.random() >= 0.02:  # 2 % belonged to a failed instance
            for _ in range(30):  # skewed: low-numbered holders are hot
                cand = holders[int(rng.random() ** 1.6 * len(holders))]
                fits = loads[cand.server_id] + weight <= cand.capacity
                if fits and (zone is None or cand.zone == zone):
                    owner = cand.server_id
                    loads[owner] += weight
                    break
        out.append(StreamView(f"stream-{k:07d}", weight, rng.randint(0, 3), owner, zone, group))
    return insts, out


def round_robin_baseline(
    insts: Sequence[InstanceView], streams: Sequence[StreamView]
) -> dict[str, Any]:
    """Reassign everything from scratch, round-robin; count how many owned streams move."""
    started = time.perf_counter()
    eligible = sorted((i for i in insts if i.eligible), key=lambda i: i.server_id)
    loads = {i.server_id: 0 for i in insts}
    moves = unplaced = 0
    cursor = 0
    for s in sorted(streams, key=lambda s: s.stream_id):
        for step in range(len(eligible)):
            inst = eligible[(cursor + step) % len(eligible)]
            if loads[inst.server_id] + s.weight <= inst.capacity and (
                s.zone is None or s.zone == inst.zone
            ):
                loads[inst.server_id] += s.weight
                cursor = (cursor + step + 1) % len(eligible)
                moves += s.owner is not None and s.owner != inst.server_id
                break
        else:
            unplaced += 1
    return {
        "plan_s": round(time.perf_counter() - started, 4),
        "moves": moves,
        "unplaced": unplaced,
        "max_load_factor": round(_max_factor(insts, loads), 4),
    }


def _max_factor(insts: Sequence[InstanceView], loads: dict[str, int]) -> float:
    factors = [loads[i.server_id] / e for i in insts if (e := effective_capacity(i)) > 0]
    return max(factors, default=0.0)


def measure(name: str, cluster: Cluster, runs: int) -> dict[str, Any]:
    insts, streams = cluster
    balancer = SmartLoadBalancer()
    times, cpu_times, plan = [], [], None
    for _ in range(runs):
        started, cpu_started = time.perf_counter(), time.process_time()
        result: RebalancePlan = balancer.plan(insts, streams)
        times.append(time.perf_counter() - started)
        cpu_times.append(time.process_time() - cpu_started)
        assert plan is None or result == plan, "the balancer is not deterministic"
        plan = result
    assert plan is not None
    before: Counter[str] = Counter({i.server_id: 0 for i in insts})
    for s in streams:
        if s.owner is not None:
            before[s.owner] += s.weight
    baseline = round_robin_baseline(insts, streams)
    moves = len(plan.moves)
    return {
        "plan_s": round(statistics.median(times), 4),
        "plan_s_max": round(max(times), 4),
        "plan_cpu_s": round(statistics.median(cpu_times), 4),
        "moves": moves,
        "lower_bound": plan.lower_bound,
        "moves_ratio": round(moves / plan.lower_bound, 4) if plan.lower_bound else 1.0,
        "moved_weight": plan.moved_weight,
        "moved_weight_ratio": (
            round(plan.moved_weight / plan.lower_bound, 4) if plan.lower_bound else 1.0
        ),
        "max_load_factor": round(plan.max_load_factor, 4),
        "ideal_load_factor": round(plan.ideal_load_factor, 4),
        "max_load_factor_before": round(_max_factor(insts, dict(before)), 4),
        "score_before": round(plan.score_before, 4),
        "score_after": round(plan.score_after, 4),
        "reasons": dict(sorted(Counter(m.reason for m in plan.moves).items())),
        "placements": len(plan.placements),
        "unassigned": len(plan.unassigned),
        "stranded": len(plan.stranded),
        "baseline_round_robin": baseline,
        "moves_vs_baseline": round(moves / baseline["moves"], 4) if baseline["moves"] else None,
    }


def _print_human(name: str, args: argparse.Namespace, f: dict[str, Any]) -> None:
    base = f["baseline_round_robin"]
    print(f"{name}: {args.streams} streams x {args.instances} instances, {args.runs} runs")
    print(f"  plan time        median {f['plan_s']:.3f} s wall (max {f['plan_s_max']:.3f} s),")
    print(f"                   median {f['plan_cpu_s']:.3f} s CPU")
    print(
        f"  moves            {f['moves']} (lower bound {f['lower_bound']} weight units, "
        f"moves / lower bound {f['moves_ratio']:.2f}) {f['reasons']}"
    )
    print(
        f"  moved weight     {f['moved_weight']} "
        f"(moved weight / lower bound {f['moved_weight_ratio']:.2f})"
    )
    print(
        f"  max load factor  {f['max_load_factor']:.3f} after, {f['max_load_factor_before']:.3f} "
        f"before, ideal {f['ideal_load_factor']:.3f}"
    )
    print(f"  placed {f['placements']}, unassigned {f['unassigned']}, stranded {f['stranded']}")
    print(
        f"  baseline (round-robin from scratch): {base['moves']} moves "
        f"in {base['plan_s']:.3f} s, max load factor {base['max_load_factor']:.3f}, "
        f"unplaced {base['unplaced']}; balancer moves / baseline moves = {f['moves_vs_baseline']}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "streams": args.streams,
        "instances": args.instances,
        "runs": args.runs,
    }
    report["seed"] = args.seed
    report["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work skews wall time
    builders = {"uniform": uniform_cluster, "weighted": weighted_cluster}
    for name, build in builders.items():
        cluster = build(args.streams, args.instances, random.Random(args.seed))
        figures = measure(name, cluster, args.runs)
        report[name] = figures
        _print_human(name, args, figures)
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
