"""Heartbeat scale benchmark: how many instances can one orchestrator watch at 1 Hz?

    .venv/bin/python bench/heartbeats.py [--steps 100,500,1000,2000,5000,10000]
        [--sim-procs 2] [--fail-after 5] [--bootstrap HOST:PORT]
        [--security plaintext|secure|both]

For each step (a fresh topic prefix and a fresh orchestrator each time), simulated agents,
not full WorkerAgents, publish valid ``Heartbeat`` messages at 1 Hz, spread evenly over the
second, from ``--sim-procs`` child processes that share one producer each. This process runs
a few agents of its own whose timing it knows exactly:

* **detection**: once every agent is registered and a short warm-up has passed, ``--victims``
  agents stop; ``detection_s`` is the time from a victim's last heartbeat to the arrival of
  its ``InstanceFailed`` event (ideal: ``fail_after`` plus one decide cycle);
* **lag**: ``--probes`` new agents join one per second; ``lag_s`` is the time from a probe's
  first heartbeat to the arrival of its ``InstanceRegistered`` event, i.e. how far behind
  the heartbeats the orchestrator's decisions are (consumption, decide, transaction).

A step passes when every agent registered, every victim was detected within
``fail_after + 1`` s, the worst probe lag is under 1 s and no live agent was suspected or
failed during the measurement (suspicions during the registration storm and the warm-up
are reported apart, as ``startup_false_alarms``). ``--profile`` runs the orchestrator under
pyinstrument. Steps go up until one fails; each is bounded in time. Human-readable lines first;
the last line is one JSON object (``instances``: the largest passing step).

``--security secure`` runs on the local SASL/SCRAM cluster with ACLs (``streamplane infra
up --secure``; ``--bootstrap`` is then ignored): the orchestrator as ``orchestrator``, the
simulators and probes as ``worker``. ``both`` runs every step plaintext, then secure, and
reports both (``plaintext``, ``secure`` in the JSON line).

``--signed`` runs the same steps with enrollment closed: every agent is enrolled first
(``EnrollInstance``, sent as ``operator``), certifies one session with its own Ed25519 key
and MACs every heartbeat under it (envelope 2, ``bench/_signing.py``); the figures then
include the gate's check of every heartbeat, whose cost is also measured in-process
(``first_sight_us`` and ``steady_us`` beside ``decode_us``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import signal
import sys
import time
from datetime import UTC, datetime
from typing import Any

import _common as c
import _signing
from _heartbeat_sim import Simulator, template

from control_plane.orchestrator.settings import OrchestratorSettings
from control_plane.tools.harness import Children
from events import control as ev
from events.topics import Topics
from kafka_auth import Brokers, KafkaClientSettings
from projections.io.follow import LogFollower
from projections.io.kafka import make_producer, started
from projections.io.topics import ensure_topics


async def simulate(args: argparse.Namespace) -> None:
    """Child mode: ``--count`` agents from ``--first`` until SIGTERM."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    topics = Topics(args.prefix)
    # the simulators' credentials come from the environment, as a worker's would
    access = KafkaClientSettings(kafka_bootstrap=args.bootstrap).kafka_access
    async with started(make_producer(access, linger_ms=20), what="sim") as producer:
        sim = Simulator(producer, topics.heartbeats, signed=args.signed)
        for i in range(args.first, args.first + args.count):
            sim.add(f"sim-{i:05d}", i)
        task = asyncio.create_task(sim.run(stop))
        while not stop.is_set():
            with_timeout = asyncio.create_task(stop.wait())
            await asyncio.wait({with_timeout, task}, timeout=5, return_when="FIRST_COMPLETED")
            with_timeout.cancel()
            print(f"sent {sim.sent}, schedule behind max {sim.behind_max:.3f}s", flush=True)
            if task.done():
                task.result()
        await task


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", default="100,500,1000,2000,5000,10000")
    p.add_argument("--sim-procs", type=int, default=2, help="simulator processes")
    p.add_argument("--victims", type=int, default=2)
    p.add_argument("--probes", type=int, default=5)
    p.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring")
    p.add_argument("--profile", action="store_true", help="orchestrator under pyinstrument")
    p.add_argument("--register-timeout", type=float, default=120.0, help="seconds per step")
    p.add_argument("--fail-after", type=float, default=OrchestratorSettings().fail_after)
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--security", choices=("plaintext", "secure", "both"), default="plaintext")
    p.add_argument("--signed", action="store_true", help="enrolled agents, signed heartbeats")
    p.add_argument("--simulate", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--prefix", help=argparse.SUPPRESS)
    p.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args()


def _spawn_sims(
    children: Children, who: c.Principals, prefix: str, count: int, procs: int, signed: bool
) -> None:
    per = math.ceil(count / max(1, procs))
    for p in range(procs):
        first = p * per
        n = min(per, count - first)
        if n <= 0:
            break
        args = [sys.executable, __file__, "--simulate", "--bootstrap", who.bootstrap]
        args += ["--prefix", prefix, "--first", str(first), "--count", str(n)]
        args += ["--signed"] if signed else []
        children.spawn(f"sim-{p}", "sim", args, who.worker_env)


def _sim_behind(children: Children) -> float:
    """The worst schedule delay the simulator children logged (their last report)."""
    worst = 0.0
    for ch in children.all:
        if ch.kind != "sim":
            continue
        lines = [x for x in ch.log_path.read_text().splitlines() if x.startswith("sent ")]
        if lines:
            worst = max(worst, float(lines[-1].rsplit(" ", 1)[1].rstrip("s")))
    return worst


class Measure:
    """Victims silenced, probes joining, and what the log says about them (arrival times)."""

    def __init__(self, args: argparse.Namespace, sim: Simulator):
        self.args, self.sim = args, sim
        self.victims = [f"victim-{v}" for v in range(args.victims)]
        self.probes = [f"probe-{p}" for p in range(args.probes)]
        self.silent_since: dict[str, float] = {}
        self.probe_sent: dict[str, float] = {}
        self.failed: dict[str, float] = {}
        self.registered: dict[str, float] = {}
        self.false_alarms: list[str] = []
        #: suspicions of live agents before the measurement (registration storm, warm-up)
        self.early_alarms: list[str] = []
        self.measuring = False
        self.maintenance: list[str] = []

    def on_events(self, events: list[Any], arrived: float) -> None:
        for e in events:
            if isinstance(e, ev.InstanceFailed) and e.server_id in self.silent_since:
                self.failed.setdefault(e.server_id, arrived)
            elif isinstance(e, ev.InstanceRegistered) and e.server_id in self.probe_sent:
                self.registered.setdefault(e.server_id, arrived)
            elif isinstance(e, ev.InstanceSuspected | ev.InstanceFailed):
                if e.server_id not in self.silent_since:
                    alarms = self.false_alarms if self.measuring else self.early_alarms
                    alarms.append(f"{type(e).__name__} {e.server_id}")
            elif isinstance(e, ev.MaintenanceModeEntered):
                self.maintenance.append(f"{e.reason}: {e.detail}")

    def done(self) -> bool:
        return len(self.failed) == len(self.victims) and len(self.registered) == len(self.probes)

    async def run(self, f: LogFollower) -> None:
        self.measuring = True
        for v in self.victims:
            self.silent_since[v] = self.sim.remove(v)
        began = time.monotonic()
        limit = self.args.fail_after + len(self.probes) + 15
        while not self.done() and time.monotonic() - began < limit:
            due = int(time.monotonic() - began) + 1
            for p in self.probes[len(self.probe_sent) : due]:
                self.sim.add(p, len(self.probe_sent) * 3)
                stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
                self.probe_sent[p] = time.time()
                await self.sim.send_one(p, template(p, self.sim.incarnation), stamp)
            self.on_events(await f.poll(timeout_ms=20), time.time())

    def figures(self) -> dict[str, Any]:
        det = [self.failed[v] - self.silent_since[v] for v in self.failed]
        lag = [self.registered[p] - self.probe_sent[p] for p in self.registered]
        return {
            "detection_s": round(max(det), 3) if len(det) == len(self.victims) else None,
            "lag_s": round(max(lag), 3) if len(lag) == len(self.probes) else None,
            "lag_p50_s": round(c.percentile(lag, 50), 3) if lag else None,
            "false_alarms": len(self.false_alarms),
            "startup_false_alarms": len(self.early_alarms),
            "maintenance": self.maintenance[:3],
        }


async def _step(args: argparse.Namespace, secure_mode: bool, n: int) -> dict[str, Any]:
    prefix = c.fresh_prefix(f"hb{n}")
    who = c.principals(args.bootstrap, prefix, secure_mode)
    kafka, topics = who.observer, Topics(prefix)
    await ensure_topics(kafka, topics)
    out: dict[str, Any] = {"instances": n}
    env = {"FAIL_AFTER": str(args.fail_after), "OPEN_ENROLLMENT": str(not args.signed).lower()}
    with c.fleet("heartbeats", prefix, who.bootstrap, env) as children:
        producer = make_producer(who.worker, linger_ms=0)
        async with c.log_follower(kafka, topics) as f, started(producer, what="probe producer"):
            orch = c.start_orchestrator(children, profile=args.profile, env=who.orchestrator_env)
            await c.wait_state(f, lambda s: s.leader_id is not None, limit_s=60, what="a leader")
            stop = asyncio.Event()
            sim = Simulator(producer, topics.heartbeats, signed=args.signed)
            m = Measure(args, sim)
            if args.signed:
                await _enroll_all(f, who.operator, topics, n, m)
            for i, v in enumerate(m.victims):
                sim.add(v, i * 7)
            local = asyncio.create_task(sim.run(stop))
            try:
                _spawn_sims(children, who, prefix, n - len(m.victims), args.sim_procs, args.signed)
                out["register_s"] = round(
                    await c.wait_state(
                        f,
                        lambda s: c.active_count(s) >= n,
                        limit_s=args.register_timeout,
                        what=f"{n} instances registered",
                    ),
                    1,
                )
                await _idle(f, args.warmup, m)
                cpu0, t0 = c.cpu_seconds(orch.pid), time.monotonic()
                await m.run(f)
                out["orchestrator_cpu"] = round(
                    (c.cpu_seconds(orch.pid) - cpu0) / (time.monotonic() - t0), 2
                )
            except TimeoutError as exc:
                out["error"] = str(exc)
            finally:
                stop.set()
                await local
            out |= m.figures()
            out["sim_behind_max_s"] = round(max(_sim_behind(children), sim.behind_max), 3)
    return out | _verdict(args, out)


async def _enroll_all(
    f: LogFollower, operator: Brokers, topics: Topics, n: int, m: Measure
) -> None:
    """Enroll every agent of the step (simulated, victims, probes) before any heartbeat, as
    the operator (the one role that may send commands on a secure cluster)."""
    sims = [f"sim-{i:05d}" for i in range(n - len(m.victims))]
    everyone = [*sims, *m.victims, *m.probes]
    async with started(make_producer(operator), what="enrolling producer") as producer:
        await _signing.enroll(producer, topics, everyone)
    await c.wait_state(
        f, lambda s: len(s.enrolled) >= len(everyone), limit_s=120, what="every agent enrolled"
    )


async def _idle(f: LogFollower, seconds: float, m: Measure) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        m.on_events(await f.poll(timeout_ms=100), time.time())


def _verdict(args: argparse.Namespace, s: dict[str, Any]) -> dict[str, Any]:
    why = []
    if "error" in s:
        why.append(s["error"])
    if s.get("detection_s") is None or s["detection_s"] > args.fail_after + 1:
        why.append(f"detection {s.get('detection_s')} s > fail_after + 1")
    if s.get("lag_s") is None or s["lag_s"] >= 1.0:
        why.append(f"lag {s.get('lag_s')} s >= 1")
    if s.get("false_alarms"):
        why.append(f"{s['false_alarms']} live instances suspected or failed")
    return {"passed": not why, "why": "; ".join(why)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """The steps in one security mode, or (``both``) plaintext then secure."""
    if args.security != "both":
        return await run_steps(args, secure_mode=args.security == "secure")
    runs = {mode: await run_steps(args, secure_mode=mode == "secure") for mode in MODES}
    return {
        "compared": "security",
        **runs,
        "instances": {mode: runs[mode]["instances"] for mode in MODES},
        "target_met": all(r["target_met"] for r in runs.values()),
        "date": c.utc_now_text(),
    }


MODES = ("plaintext", "secure")


async def run_steps(args: argparse.Namespace, *, secure_mode: bool) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    mode = MODES[secure_mode]
    for n in (int(x) for x in args.steps.split(",")):
        s = await _step(args, secure_mode, n)
        steps.append(s)
        print(
            f"{mode}: {n:>6} instances: {'pass' if s['passed'] else 'FAIL'}  register "
            f"{s.get('register_s')}s  detection {s.get('detection_s')}s  lag max "
            f"{s.get('lag_s')}s p50 {s.get('lag_p50_s')}s  orchestrator CPU "
            f"{s.get('orchestrator_cpu')}  simulator behind {s['sim_behind_max_s']}s  "
            f"suspicions at startup {s.get('startup_false_alarms')}"
            + (f"  ({s['why']})" if s["why"] else ""),
            flush=True,
        )
        if not s["passed"]:
            break
    best = max((s for s in steps if s["passed"]), key=lambda s: s["instances"], default=None)
    failing = next((s for s in steps if not s["passed"]), None)
    return {
        "signed": args.signed,
        "cost_per_heartbeat": _signing.verification_cost(),
        "instances": best["instances"] if best else 0,
        "detection_s": best["detection_s"] if best else None,
        "lag_s": best["lag_s"] if best else None,
        "fail_after_s": args.fail_after,
        "target_instances": 10_000,
        "target_met": bool(best and best["instances"] >= 10_000),
        "first_failing": failing,
        "steps": steps,
        "security": mode,
        "date": c.utc_now_text(),
        "load_avg_1m": round(c.load_average(), 2),
    }


if __name__ == "__main__":
    arguments = _args()
    if arguments.simulate:
        asyncio.run(simulate(arguments))
    else:
        result = asyncio.run(main(arguments))
        print(
            f"highest passing step: {result['instances']} instances "
            f"(target 10,000: {'met' if result['target_met'] else 'NOT met'})"
        )
        c.emit(result)
