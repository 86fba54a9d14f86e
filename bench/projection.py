"""Projection benchmark (issue 12): how far behind the log the views are under load, and how
fast the read model is rebuilt from a long log.

    .venv/bin/python bench/projection.py [--rate 5000] [--seconds 60] [--rebuild-events 1000000]
                                         [--seed 0] [--bootstrap HOST:PORT] [--database-url URL]

(1) **Lag.** A real ``streamplane projector`` (Faust) and a real ``streamplane read-model``
(PostgreSQL) follow a fresh prefix; generated control events (``projections.testing.
synthetic``, a valid history) are written to ``<prefix>.events`` at ``--rate`` events per
second for ``--seconds`` (after a warm-up that brings both up). The lag of an event is the
time from its record's Kafka timestamp to when it is visible:

- in the Faust table: the timestamp of the ``assignments`` table's changelog record that
  carries its seq (``as_of_seq``);
- in the assignments topic: the same, for the topic's record;
- in PostgreSQL: when a poll (every 20 ms) of the read model's tracking row first shows a
  ``last_seq`` at or past it (so up to 20 ms late).

Every producer is on this machine, so the timestamps share a clock. p50/p99 per view;
target p99 < 1 s each.

(2) **Rebuild.** On a log of ``--rebuild-events`` generated events (the prefix of
``bench/replay.py``, reused when it is there): the read model's rebuild
(``ReadModelProjector.rebuild``: drop the tables, project the whole log) against the raw read
of the same log (every record read and ``orjson.loads``-ed: ``bench/replay.py``'s (a)), in the
same run: ``rebuild_eps``, ``raw_eps``, ``ratio``.

Figures first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from replay import prepare_log, raw_read

from control_plane.tools.harness import CLI
from events.codec import encode
from events.topics import ALL_TOPICS, Topics, changelog_topic, projector_app_id
from projections.fold import apply_tracked
from projections.fold.state import ClusterState
from projections.io.kafka import make_producer, started
from projections.io.read_store import ReadModelSettings
from projections.io.records import read_all
from projections.io.replay import ReplaySettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import iter_history

NET = 60.0
WARMUP = 500
POLL_S = 0.02


def _database_url(arg: str | None) -> str:
    if arg or os.environ.get("STREAMPLANE_DATABASE_URL"):
        return str(arg or os.environ["STREAMPLANE_DATABASE_URL"])
    from control_plane.tools.infra import ensure_up

    url = ensure_up(brokers=0, postgres=True).database_url
    assert url is not None
    return url


async def _records(kafka: str, topic: str) -> list[tuple[int, bytes | None]]:
    """(timestamp ms, value) of every record of ``topic`` up to its end now."""
    return [(r.timestamp, r.value) for r in await read_all(kafka, topic, kafka_timeout=NET)]


def _seq_of(value: bytes | None, key: str) -> int | None:
    if value is None:
        return None
    try:
        seq = orjson.loads(value).get(key)
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None


async def _schema(url: str, schema: str) -> None:
    """The read model writes into an existing schema (as the tests' fixture makes one)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await conn.close()


def _last_projected_seq(events: list[Any]) -> int:
    """The seq of the last of ``events`` that changes an assignment record."""
    state, last = ClusterState(), 0
    for event in events:
        state, changed = apply_tracked(state, event)
        if changed.streams:
            last = event.seq
    return last


async def _top_seq(kafka: str, topic: str) -> int:
    seqs = [_seq_of(v, "as_of_seq") for _, v in await _records(kafka, topic)]
    return max((s for s in seqs if s is not None), default=0)


def _summary(lags: list[float]) -> dict[str, Any]:
    return {
        "n": len(lags),
        "p50_ms": round(c.percentile(lags, 50) * 1000, 1),
        "p99_ms": round(c.percentile(lags, 99) * 1000, 1),
        "max_ms": round(max(lags) * 1000, 1) if lags else None,
    }


class Poller:
    """The read model's ``last_seq`` over time: (wall time, seq) at each change."""

    def __init__(self, url: str, schema: str, name: str) -> None:
        self.url, self.schema, self.name = url, schema, name
        self.seen: list[tuple[float, int]] = []
        self.last = -1

    async def run(self, stop: asyncio.Event) -> None:
        conn = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = await asyncpg.connect(
                        self.url, server_settings={"search_path": self.schema}
                    )
                seq = await conn.fetchval(
                    "SELECT last_seq FROM projection_tracking WHERE projection = $1", self.name
                )
            except (OSError, asyncpg.PostgresError):
                seq, conn = None, None  # the tables are not there yet
            if seq is not None and seq > self.last:
                self.last = int(seq)
                self.seen.append((time.time(), self.last))
            await asyncio.sleep(POLL_S)
        if conn is not None:
            await conn.close()


async def _write(producer: Any, topic: str, events: Iterator[bytes], rate: float, n: int) -> float:
    """Write ``n`` records at ``rate`` per second in 10 ms ticks; the seconds it took."""
    per_tick = max(1, round(rate / 100))
    began = time.perf_counter()
    sent = 0
    while sent < n:
        futures = []
        for _ in range(min(per_tick, n - sent)):
            futures.append(await producer.send(topic, next(events)))
            sent += 1
        await asyncio.gather(*futures)
        ahead = began + sent / rate - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
        elif sent % (per_tick * 100) == 0 and -ahead > 1.0:
            print(f"  behind the rate by {-ahead:.1f}s at {sent} events", flush=True)
    return time.perf_counter() - began


async def lag_run(args: argparse.Namespace, kafka: str, url: str) -> dict[str, Any]:
    prefix = c.fresh_prefix("projection")
    topics = Topics(prefix)
    await ensure_topics(kafka, topics, ALL_TOPICS)
    schema = prefix.replace("-", "_")
    await _schema(url, schema)
    timed = int(args.rate * args.seconds)
    history = iter_history(WARMUP + timed, seed=args.seed)
    warmup = [next(history) for _ in range(WARMUP)]
    projected = _last_projected_seq(warmup)
    encoded = (encode(e) for e in itertools.chain(warmup, history))
    env = {"DATABASE_URL": url, "DATABASE_SCHEMA": schema}
    if args.commit_interval is not None:  # the projector's Faust commit interval, seconds
        env["PROJECTOR_COMMIT_INTERVAL"] = str(args.commit_interval)
    stop = asyncio.Event()
    poller = Poller(url, schema, ReadModelSettings().read_model_name)
    with c.fleet("projection", prefix, kafka, env) as children:
        children.spawn("projector", "projector", [*CLI, "projector", "--log-level", "WARNING"])
        children.spawn("read-model", "read-model", [*CLI, "read-model", "--log-level", "WARNING"])
        polling = asyncio.create_task(poller.run(stop))
        producer = make_producer(kafka, linger_ms=5)
        async with started(producer, kafka_timeout=NET, what="event writer"):
            await _write(producer, topics.events, encoded, 10_000, WARMUP)
            began = time.monotonic()
            while poller.last < WARMUP:  # seqs start at 1: both up, tables made
                if time.monotonic() - began > 120:
                    raise SystemExit("the read model did not catch up with the warm-up")
                await asyncio.sleep(0.2)
            while await _top_seq(kafka, topics.assignments) < projected:  # Faust is up too
                if time.monotonic() - began > 180:
                    raise SystemExit("the projector did not catch up with the warm-up")
                await asyncio.sleep(0.5)
            print(f"warm-up done; writing {timed} events at {args.rate:g}/s", flush=True)
            took = await _write(producer, topics.events, encoded, args.rate, timed)
        final = WARMUP + timed
        deadline = time.monotonic() + args.drain_timeout
        while poller.last < final and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.sleep(2)  # the projector's last records
        stop.set()
        await polling
    written = {
        seq: ts / 1000
        for ts, v in await _records(kafka, topics.events)
        if (seq := _seq_of(v, "seq")) is not None and seq > WARMUP
    }
    changelog = changelog_topic(projector_app_id(prefix), "assignments")
    views: dict[str, Any] = {"rate_achieved": round(timed / took, 1)}
    for view, topic in (("faust_table", changelog), ("assignments_topic", topics.assignments)):
        lags = [
            ts / 1000 - written[seq]
            for ts, v in await _records(kafka, topic)
            if (seq := _seq_of(v, "as_of_seq")) in written
        ]
        views[view] = _summary(lags)
    pg: list[float] = []
    previous = WARMUP
    for at, seq in poller.seen:
        pg.extend(at - written[s] for s in range(previous + 1, seq + 1) if s in written)
        previous = max(previous, seq)
    views["postgres"] = _summary(pg)
    views["postgres"]["caught_up"] = poller.last >= final
    return views


async def rebuild_run(args: argparse.Namespace, kafka: str, url: str) -> dict[str, Any]:
    topic = await prepare_log(kafka, args.rebuild_events, args.seed, fresh=False)
    prefix = topic.removesuffix(".events")
    n_raw, raw_s = await raw_read(kafka, topic, ReplaySettings(kafka_timeout=NET))
    schema = f"bench_rebuild_{args.rebuild_events}"
    await _schema(url, schema)
    settings = ReadModelSettings(
        kafka_bootstrap=kafka,
        topic_prefix=prefix,
        database_url=url,
        database_schema=schema,
        read_model_dead_letters=False,
    )
    async with ReadModelProjector(settings=settings) as projector:
        began = time.perf_counter()
        n = await projector.rebuild()
        rebuild_s = time.perf_counter() - began
    rebuild_eps, raw_eps = n / rebuild_s, n_raw / raw_s
    return {
        "events": n,
        "rebuild_s": round(rebuild_s, 2),
        "raw_s": round(raw_s, 2),
        "rebuild_eps": round(rebuild_eps),
        "raw_eps": round(raw_eps),
        "ratio": round(rebuild_eps / raw_eps, 4),
    }


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", type=float, default=5000.0, help="control events per second")
    p.add_argument("--seconds", type=float, default=60.0, help="how long to write them")
    p.add_argument("--drain-timeout", type=float, default=180.0, help="seconds after writing")
    p.add_argument("--rebuild-events", type=int, default=1_000_000, help="0: no rebuild run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--commit-interval", type=float, default=None, help="projector's, seconds")
    p.add_argument("--bootstrap", default=None)
    p.add_argument("--database-url", default=None)
    return p.parse_args()


async def main() -> None:
    args = _args()
    kafka, url = c.bootstrap(args.bootstrap), _database_url(args.database_url)
    print(f"# {c.utc_now_text()}, load {c.load_average():.2f}", flush=True)
    result: dict[str, Any] = {"rate": args.rate, "seconds": args.seconds}
    result["lag"] = await lag_run(args, kafka, url)
    for view in ("faust_table", "assignments_topic", "postgres"):
        s = result["lag"][view]
        ok = s["p99_ms"] < 1000
        verdict = "ok" if ok else "over 1 s"
        print(f"lag {view}: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms over {s['n']} ({verdict})")
    if args.rebuild_events:
        result["rebuild"] = r = await rebuild_run(args, kafka, url)
        print(f"rebuild {r['events']} events: {r['rebuild_eps']}/s", end="")
        print(f" vs raw read {r['raw_eps']}/s, ratio {r['ratio']}")
    result["load_after"] = round(c.load_average(), 2)
    c.emit(result)


if __name__ == "__main__":
    asyncio.run(main())
