"""Command latency benchmark: RegisterStream sent -> StreamStarted, at 1,000 commands/s.

    .venv/bin/python bench/latency.py [--rate 1000] [--seconds 10] [--workers 4]
        [--capacity 3000] [--bootstrap HOST:PORT] [--profile]
        [--metrics off|on|both] [--rounds 1] [--scrape-interval 1.0]
        [--security plaintext|secure|both]

One orchestrator and ``--workers`` ``streamplane worker`` processes (``demo`` handler, no CPU
per tick) with room for every stream. One producer sends ``RegisterStream`` commands on a
fixed schedule (``--rate`` per second for ``--seconds``); each command's send time is taken
just before it is handed to the producer. The control log is followed in this process:
for each stream, the arrival of ``StreamRegistered`` (the orchestrator took the command),
``StreamAssigned`` (placed, desired set written in the same transaction) and
``StreamStarted`` (the worker's heartbeat reported it running) gives where the time goes.
Latency is measured to the event's *arrival* here (same host clock as the send time).

``--profile`` runs the orchestrator under pyinstrument (``pip install pyinstrument``) and
writes its report beside the logs. Human-readable lines first; the last line is one JSON
object (``p50_ms``, ``p99_ms`` of command -> StreamStarted, ``rate`` actually sent per second).

``--metrics on`` gives the orchestrator and the workers a ``/metrics`` endpoint
(``STREAMPLANE_METRICS_ADDRESS``) and scrapes all of them every ``--scrape-interval`` seconds
while commands flow (1 s: fifteen times Prometheus' usual rate, to make the cost visible);
``off`` serves nothing. ``both`` runs the whole measurement ``off`` then ``on``, ``--rounds``
times, each on fresh topics, and reports each run and the overhead of ``on`` over ``off``
(medians of the rounds): p50, p99 and the orchestrator's CPU, as a share of a core over the
window and as CPU milliseconds per command (the work, whatever the window's length)
(docs/benchmarks.md).

``--security secure`` runs on the local SASL/SCRAM cluster with ACLs (``streamplane infra
up --secure``, started when missing; ``--bootstrap`` is then ignored), every process as its
own principal: the orchestrator as ``orchestrator``, the workers as ``worker``, the command
sender as ``operator``. ``both`` alternates plaintext and secure runs (``--rounds`` pairs) and
reports the cost of authentication as for ``--metrics both``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

import _common as c

from control_plane.tools.harness import Children, orchestrator_args
from events import commands as cmd
from events import control as ev
from events.codec import encode
from events.topics import Topics
from kafka_auth import Brokers
from projections.io.kafka import make_producer, started
from projections.io.topics import ensure_topics
from telemetry.metrics import free_address

STAGES = ("registered", "assigned", "started")


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=1000.0, help="commands per second")
    p.add_argument("--seconds", type=float, default=10.0, help="how long to send")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--capacity", type=int, default=3000, help="max_streams of each worker")
    p.add_argument("--drain-timeout", type=float, default=120.0, help="seconds after sending")
    p.add_argument("--profile", action="store_true", help="orchestrator under pyinstrument")
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--metrics", choices=("off", "on", "both"), default="off")
    p.add_argument("--rounds", type=int, default=1, help="with --metrics both: off/on pairs")
    p.add_argument("--scrape-interval", type=float, default=1.0, help="seconds, metrics on")
    p.add_argument("--security", choices=("plaintext", "secure", "both"), default="plaintext")
    args = p.parse_args()
    if args.metrics == "both" and args.security == "both":
        p.error("--metrics both and --security both: compare one thing at a time")
    return args


async def _send(
    kafka: Brokers, topic: str, rate: float, seconds: float, sent: dict[str, float]
) -> float:
    """Send on schedule; returns the achieved rate (commands per second)."""
    total = int(rate * seconds)
    async with started(make_producer(kafka), what="command producer") as producer:
        began = time.monotonic()
        pending = []
        for k in range(total):
            delay = began + k / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sid = f"lat-{k:06d}"
            command = cmd.RegisterStream(
                id=uuid.uuid4().hex,
                source="bench/latency",
                time=datetime.now(UTC),
                command_id=uuid.uuid4().hex,
                stream_id=sid,
            )
            sent[sid] = time.time()
            pending.append(await producer.send(topic, encode(command), key=sid.encode()))
        last = time.monotonic()
        async with asyncio.timeout(c.NET):
            await asyncio.gather(*pending)
    return total / max(last - began, 1e-9)


def _track(seen: dict[str, dict[str, float]]) -> Any:
    kinds: dict[type, str] = {ev.StreamRegistered: "registered", ev.StreamAssigned: "assigned",
             ev.StreamStarted: "started"}  # fmt: skip

    def on_events(events: list[Any], arrived: float) -> None:
        for e in events:
            stage = kinds.get(type(e))
            if stage is not None:
                seen[stage].setdefault(e.stream_id, arrived)

    return on_events


class Scraper:
    """Scrapes ``/metrics`` of every child given an address, as Prometheus would."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.addresses: list[str] = []
        self.scrapes = 0
        self.failures = 0

    def env(self, on: bool) -> dict[str, str]:
        if not on:
            return {}
        self.addresses.append(free_address())
        return {"STREAMPLANE_METRICS_ADDRESS": self.addresses[-1]}

    def _get(self, address: str) -> None:
        try:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as r:
                r.read()
            self.scrapes += 1
        except OSError:
            self.failures += 1

    async def run(self) -> None:
        while True:
            for address in self.addresses:
                await asyncio.to_thread(self._get, address)
            await asyncio.sleep(self.interval)


def _start_orchestrator(children: Children, env: dict[str, str], profile: bool) -> None:
    if profile or not env:
        c.start_orchestrator(children, profile=profile)
    else:
        children.spawn("orch-1", "orchestrator", orchestrator_args("orch-1"), env)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement, or with ``--metrics both`` (``--security both``) off/on
    (plaintext/secure) pairs and the overhead."""
    metrics, secure_mode = args.metrics == "on", args.security == "secure"
    if "both" not in (args.metrics, args.security):
        return await measure(args, metrics=metrics, secure_mode=secure_mode)
    by, runs = ("metrics" if args.metrics == "both" else "security"), []
    for _ in range(args.rounds):
        for on in (False, True):
            if by == "metrics":
                runs.append(await measure(args, metrics=on, secure_mode=secure_mode))
            else:
                runs.append(await measure(args, metrics=metrics, secure_mode=on))
            print(f"# {by} {runs[-1][by]}: {_line(runs[-1], args)}", flush=True)
    return _overhead(runs, by)


def _overhead(runs: list[dict[str, Any]], by: str) -> dict[str, Any]:
    off_value, on_value = ("off", "on") if by == "metrics" else ("plaintext", "secure")

    def median(value: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs if r[by] == value))

    out: dict[str, Any] = {"runs": runs, "compared": by, "date": c.utc_now_text()}
    for key in ("p50_ms", "p99_ms", "orchestrator_cpu", "orchestrator_cpu_ms_per_command"):
        off, on = median(off_value, key), median(on_value, key)
        out[f"{key}_{off_value}"], out[f"{key}_{on_value}"] = off, on
        out[f"{key}_overhead_pct"] = round((on - off) / off * 100, 1) if off else None
    return out


async def measure(
    args: argparse.Namespace, *, metrics: bool, secure_mode: bool = False
) -> dict[str, Any]:
    prefix = c.fresh_prefix("latency")
    who = c.principals(args.bootstrap, prefix, secure_mode)
    kafka, topics = who.observer, Topics(prefix)
    await ensure_topics(kafka, topics)
    sent: dict[str, float] = {}
    seen: dict[str, dict[str, float]] = {s: {} for s in STAGES}
    track = _track(seen)
    env = {"DEMO_CPU_MS": "0", "DEMO_TICK_INTERVAL": "10"}
    scraper = Scraper(args.scrape_interval)
    with c.fleet("latency", prefix, who.bootstrap, env) as children:
        async with c.log_follower(kafka, topics) as f:
            orchestrator_env = scraper.env(metrics) | who.orchestrator_env
            _start_orchestrator(children, orchestrator_env, args.profile)
            await c.wait_state(f, lambda s: s.leader_id is not None, limit_s=60, what="a leader")
            for i in range(args.workers):
                w = f"worker-{i + 1:02d}"
                c.start_worker(children, w, args.capacity, **scraper.env(metrics), **who.worker_env)
            n = args.workers
            await c.wait_state(f, lambda s: c.active_count(s) >= n, limit_s=120, what="workers")
            orch = children.all[0].pid
            scraping = asyncio.create_task(scraper.run())
            cpu0, t0 = c.cpu_seconds(orch), time.monotonic()
            sender = asyncio.create_task(
                _send(who.operator, topics.commands, args.rate, args.seconds, sent)
            )
            while not sender.done():
                track(await f.poll(timeout_ms=50), time.time())
            rate = await sender
            total = len(sent)
            try:
                await c.wait_state(
                    f,
                    lambda s: len(seen["started"]) >= total,
                    limit_s=args.drain_timeout,
                    what="every stream started",
                    on_events=track,
                )
            except TimeoutError as exc:
                print(f"# {exc}", flush=True)
            cpu = c.cpu_seconds(orch) - cpu0
            busy = cpu / (time.monotonic() - t0)
            scraping.cancel()
    result = _result(args, sent, seen, rate, busy)
    result.update(metrics="on" if metrics else "off", scrapes=scraper.scrapes)
    result["security"] = "secure" if secure_mode else "plaintext"
    # the work, whatever the window's length: CPU per command, sending through draining
    result["orchestrator_cpu_ms_per_command"] = round(cpu * 1000 / max(len(sent), 1), 3)
    result["scrape_failures"] = scraper.failures
    return result


def _result(
    args: argparse.Namespace,
    sent: dict[str, float],
    seen: dict[str, dict[str, float]],
    rate: float,
    busy: float,
) -> dict[str, Any]:
    lat = {s: [(seen[s][k] - sent[k]) * 1000 for k in seen[s] if k in sent] for s in STAGES}
    started_times = sorted(seen["started"].values())
    span = started_times[-1] - min(sent.values()) if started_times else 0.0
    out: dict[str, Any] = {
        "p50_ms": round(c.percentile(lat["started"], 50), 1),
        "p99_ms": round(c.percentile(lat["started"], 99), 1),
        "max_ms": round(max(lat["started"], default=float("nan")), 1),
        "rate": round(rate, 1),
        "target_rate": args.rate,
        "sent": len(sent),
        "started": len(seen["started"]),
        "started_per_s": round(len(started_times) / span, 1) if span else None,
        "orchestrator_cpu": round(busy, 2),
        "workers": args.workers,
        "date": c.utc_now_text(),
        "load_avg_1m": round(c.load_average(), 2),
    }
    for s in ("registered", "assigned"):
        out[f"{s}_p50_ms"] = round(c.percentile(lat[s], 50), 1)
        out[f"{s}_p99_ms"] = round(c.percentile(lat[s], 99), 1)
    return out


def _line(result: dict[str, Any], args: argparse.Namespace) -> str:
    return (
        f"sent {result['sent']} RegisterStream at {result['rate']:.0f}/s "
        f"(target {args.rate:.0f}/s); {result['started']} started; "
        f"command -> StreamRegistered p50 {result['registered_p50_ms']:.0f} ms, "
        f"-> StreamAssigned p50 {result['assigned_p50_ms']:.0f} ms, "
        f"-> StreamStarted p50 {result['p50_ms']:.0f} ms p99 {result['p99_ms']:.0f} ms; "
        f"orchestrator CPU {result['orchestrator_cpu']:.0%} of a core"
    )


if __name__ == "__main__":
    arguments = _args()
    result = asyncio.run(main(arguments))
    if "compared" in result:
        off, on = ("off", "on") if result["compared"] == "metrics" else ("plaintext", "secure")
        print(
            f"{result['compared']} {on} vs {off} (medians): "
            + ", ".join(
                f"{k} {result[f'{k}_{off}']} -> {result[f'{k}_{on}']} "
                f"({result[k + '_overhead_pct']}%)"
                for k in ("p50_ms", "p99_ms", "orchestrator_cpu", "orchestrator_cpu_ms_per_command")
            )
        )
    else:
        print(_line(result, arguments))
    c.emit(result)
