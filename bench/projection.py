"""Projection benchmark: how long from an event written to the log until it is visible in the
PostgreSQL read model, and in the ``<prefix>.assignments`` topic of the Faust projector; and
how fast the read model rebuilds from a large log beside the raw read rate.

    .venv/bin/python bench/projection.py [--rate 5000] [--seconds 60] [--events 300000]
        [--bootstrap HOST:PORT] [--database-url URL] [--no-projector]

(1) **lag**: a real ``streamplane read-model`` and ``streamplane projector`` follow a fresh
log. After a warm-up, generated control events are written at ``--rate`` per second for
``--seconds`` (every 20 ms a batch; an event's write time is taken just before its batch is
handed to the producer). This process watches the read model's tracking row (every 10 ms:
``last_seq`` moving from a to b makes events a+1..b visible now) and reads the assignments
topic (a record with ``as_of_seq`` s makes event s visible now; only events that change a
stream produce one). p50/p99 of those lags; target p99 < 1 s at 5,000 events/s.

(2) **rebuild**: with the processes stopped, the log is extended to ``--events`` events and
the read model is rebuilt from it in this process (``ReadModelProjector.rebuild()``: drop,
read, decode, fold, write, in batches of ``read_model_batch_max``); beside it, the raw read
rate of the same log (aiokafka ``getmany`` + ``orjson.loads``, read before and after the
rebuild, the faster kept). ``ratio = rebuild_eps / raw_eps``.

Human-readable lines first; the last line is one JSON object. Kafka from ``--bootstrap``, else
``STREAMPLANE_KAFKA_BOOTSTRAP``, else the local infrastructure; PostgreSQL likewise
(``--database-url``, ``STREAMPLANE_DATABASE_URL``); each run uses fresh topics and schemas
(the schemas are dropped at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from typing import Any

import _common as c
import asyncpg
import orjson
from aiokafka import TopicPartition

from control_plane.tools.harness import CLI
from events.codec import encode
from events.topics import Topics
from projections.io.kafka import end_offsets, make_consumer, make_producer, publish, started
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import generate_history

TICK = 0.02  # seconds between two batches of the writer
WARMUP = 2000  # events written (and waited for) before the measurement


def database_url(arg: str | None) -> str:
    if arg:
        return arg
    if env := os.environ.get("STREAMPLANE_DATABASE_URL"):
        return env
    from control_plane.tools.infra import ensure_up

    endpoints = ensure_up(brokers=0, postgres=True)
    assert endpoints.database_url is not None and endpoints.pgpass is not None
    os.environ.setdefault("PGPASSFILE", str(endpoints.pgpass))
    return endpoints.database_url


async def write_at_rate(
    kafka: str, topic: str, values: list[bytes], rate: float, written: list[float]
) -> float:
    """Write ``values`` at ``rate`` per second (batches every TICK); ``written`` gets each
    event's write time. Returns the rate achieved."""
    per = max(1, round(rate * TICK))
    t0 = time.monotonic()
    async with started(make_producer(kafka, linger_ms=0), kafka_timeout=c.NET) as producer:
        for i, start in enumerate(range(0, len(values), per)):
            delay = t0 + i * TICK - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = values[start : start + per]
            written.extend([time.monotonic()] * len(chunk))
            await publish(producer, topic, chunk, kafka_timeout=c.NET)
    return len(values) / (time.monotonic() - t0)


class Seen:
    """What the watchers saw last: the read model's seq, the assignments' newest seq and
    when a record last arrived (to tell when the projector has caught up)."""

    tables = 0
    topic = 0
    topic_at = 0.0


async def watch_tables(
    url: str, schema: str, written: list[float], lags: list[float], until_seq: int, seen: Seen
) -> None:
    """Poll the tracking row; the events it newly covers are visible now."""
    conn = await asyncpg.connect(url, server_settings={"search_path": schema})
    sql = "SELECT last_seq FROM projection_tracking WHERE projection = 'read_model'"
    try:
        while seen.tables < until_seq:
            seq = await conn.fetchval(sql) if await _has_tracking(conn) else 0
            now = time.monotonic()
            top = min(int(seq or 0), len(written))
            lags.extend(now - written[s - 1] for s in range(seen.tables + 1, top + 1) if s > WARMUP)
            seen.tables = max(seen.tables, top)
            await asyncio.sleep(0.01)
    finally:
        await conn.close()


async def _has_tracking(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT to_regclass('projection_tracking')") is not None


async def watch_assignments(
    kafka: str, topic: str, written: list[float], lags: list[float], stop: asyncio.Event, top: Seen
) -> None:
    """Read the assignments topic; a record as of seq s makes event s visible now."""
    parts = list(await end_offsets(kafka, topic, kafka_timeout=c.NET))
    tps = [TopicPartition(topic, p) for p in parts]
    seen: set[int] = set()
    consumer = make_consumer(kafka, auto_offset_reset="earliest")
    async with started(consumer, kafka_timeout=c.NET):
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while not stop.is_set():
            batches = await consumer.getmany(*tps, timeout_ms=50, max_records=10_000)
            now = time.monotonic()
            for records in batches.values():
                for r in records:
                    seq = orjson.loads(r.value).get("as_of_seq") if r.value else None
                    if isinstance(seq, int):
                        top.topic, top.topic_at = max(top.topic, seq), now
                    if isinstance(seq, int) and WARMUP < seq <= len(written) and seq not in seen:
                        seen.add(seq)
                        lags.append(now - written[seq - 1])


async def warmed_up(seen: Seen, *, projector: bool, within: float = 180.0) -> None:
    """Until the read model holds the warm-up and the projector's records stopped coming."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        quiet = seen.topic > 0 and time.monotonic() - seen.topic_at > 2
        if seen.tables >= WARMUP and (quiet or not projector):
            return
        await asyncio.sleep(0.1)
    raise SystemExit(f"processes not ready within {within:.0f}s (read model at {seen.tables})")


async def quiet_for(seen: Seen, seconds: float, *, within: float) -> None:
    """Until no assignment record arrived for ``seconds`` (at most ``within`` seconds)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if time.monotonic() - seen.topic_at >= seconds:
            return
        await asyncio.sleep(0.2)


async def raw_read(kafka: str, topic: str, batch: int) -> tuple[int, float]:
    """Every record of ``topic`` read (the read model's consumer loop) and ``orjson.loads``."""
    tp = TopicPartition(topic, 0)
    count, position = 0, 0
    async with started(make_consumer(kafka, auto_offset_reset="none"), kafka_timeout=c.NET) as k:
        k.assign([tp])
        end = (await k.end_offsets([tp]))[tp]
        k.seek(tp, 0)
        t0 = time.perf_counter()
        while position < end:
            got = await k.getmany(tp, timeout_ms=500, max_records=batch)
            position = await k.position(tp)
            for record in got.get(tp, ()):
                orjson.loads(record.value)
                count += 1
        return count, time.perf_counter() - t0


async def create_schema(url: str, schema: str, *, drop: bool = False) -> None:
    conn = await asyncpg.connect(url)
    try:
        verb = f'DROP SCHEMA IF EXISTS "{schema}" CASCADE' if drop else f'CREATE SCHEMA "{schema}"'
        await conn.execute(verb)
    finally:
        await conn.close()


def ms(values: list[float], q: float) -> float:
    return round(c.percentile(values, q) * 1000, 1)


async def measure_lag(
    args: argparse.Namespace, kafka: str, url: str, topics: Topics, schema: str, values: list[bytes]
) -> dict[str, Any]:
    """Part (1); the processes run only inside this function."""
    written: list[float] = []
    pg_lags: list[float] = []
    topic_lags: list[float] = []
    total = WARMUP + round(args.rate * args.seconds)
    env = {"DATABASE_URL": url, "DATABASE_SCHEMA": schema, "LOG_LEVEL": "WARNING"}
    with c.fleet("projection", topics.prefix, kafka, env) as children:
        reader = children.spawn("read-model", "read-model", [*CLI, "read-model"])
        projector = None
        if args.projector:
            projector = children.spawn("projector", "projector", [*CLI, "projector"])
        stop, seen = asyncio.Event(), Seen()
        tables = asyncio.create_task(watch_tables(url, schema, written, pg_lags, total, seen))
        topic = asyncio.create_task(
            watch_assignments(kafka, topics.assignments, written, topic_lags, stop, seen)
        )
        await write_at_rate(kafka, topics.events, values[:WARMUP], 10_000, written)
        print(f"# warm-up: {WARMUP} events written; waiting for the processes", flush=True)
        await warmed_up(seen, projector=args.projector)
        print(f"# writing {total - WARMUP} events at {args.rate}/s", flush=True)
        rate = await write_at_rate(kafka, topics.events, values[WARMUP:total], args.rate, written)
        try:
            async with asyncio.timeout(120):
                await tables
        except TimeoutError:
            raise SystemExit(f"read model did not catch up: {reader.log_tail(5)}") from None
        if args.projector:  # until its records stop coming (it may lag far behind)
            await quiet_for(seen, 3.0, within=300.0)
        stop.set()
        await topic
        alive = {"read_model": reader.alive, "projector": projector.alive if projector else None}
    result: dict[str, Any] = {
        "rate": round(rate),
        "lag_events": len(pg_lags),
        "pg_p50_ms": ms(pg_lags, 50),
        "pg_p99_ms": ms(pg_lags, 99),
        "pg_max_ms": ms(pg_lags, 100),
        "alive_at_end": alive,
    }
    if args.projector:
        result |= {
            "assignments_records": len(topic_lags),
            "assignments_last_seq": seen.topic,
            "assignments_p50_ms": ms(topic_lags, 50),
            "assignments_p99_ms": ms(topic_lags, 99),
            "assignments_max_ms": ms(topic_lags, 100),
        }
    return result


async def measure_rebuild(
    kafka: str, url: str, topics: Topics, schema: str, values: list[bytes], already: int
) -> dict[str, Any]:
    """Part (2): extend the log to ``len(values)`` events, rebuild, read raw."""
    if already < len(values):
        async with started(make_producer(kafka), kafka_timeout=c.NET) as producer:
            await publish(producer, topics.events, values[already:], kafka_timeout=c.NET)
    settings = ReadModelSettings(
        kafka_bootstrap=kafka,
        topic_prefix=topics.prefix,
        database_url=url,
        database_schema=schema,
        read_model_dead_letters=False,
    )
    raws = [await raw_read(kafka, topics.events, settings.read_model_batch_max)]
    async with ReadModelProjector(settings=settings) as p:
        t0 = time.perf_counter()
        rebuilt = await p.rebuild()
        took = time.perf_counter() - t0
    raws.append(await raw_read(kafka, topics.events, settings.read_model_batch_max))
    n_raw, t_raw = min(raws, key=lambda r: r[1])
    if rebuilt != len(values):
        raise SystemExit(f"rebuild applied {rebuilt} events, the log holds {len(values)}")
    rebuild_eps, raw_eps = rebuilt / took, n_raw / t_raw
    return {
        "rebuild_events": rebuilt,
        "rebuild_s": round(took, 2),
        "rebuild_eps": round(rebuild_eps),
        "raw_eps": round(raw_eps),
        "ratio": round(rebuild_eps / raw_eps, 4),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    kafka, url = c.bootstrap(args.bootstrap), database_url(args.database_url)
    topics = Topics(c.fresh_prefix("projection"))
    await ensure_topics(kafka, topics)
    total = WARMUP + round(args.rate * args.seconds)
    size = max(total, args.events)
    print(f"# generating {size} events ...", flush=True)
    values = [encode(e) for e in generate_history(size, seed=args.seed, instances=50, streams=2000)]
    tag = uuid.uuid4().hex[:8]
    lag_schema, rebuild_schema = f"bench_projection_{tag}", f"bench_rebuild_{tag}"
    await create_schema(url, lag_schema)
    await create_schema(url, rebuild_schema)
    started_at, load = c.utc_now_text(), c.load_average()
    try:
        lag = await measure_lag(args, kafka, url, topics, lag_schema, values)
        rebuild = await measure_rebuild(kafka, url, topics, rebuild_schema, values, total)
    finally:
        for schema in (lag_schema, rebuild_schema):
            await create_schema(url, schema, drop=True)
    figures = {
        "when": started_at,
        "load_1m_before": round(load, 2),
        "load_1m_after": round(c.load_average(), 2),
        "target_rate": args.rate,
        "seconds": args.seconds,
        **lag,
        **rebuild,
        "prefix": topics.prefix,
    }
    print(f"lag, event written -> visible: {lag['rate']}/s for {args.seconds}s")
    print(f"  read model (PostgreSQL): p50 {lag['pg_p50_ms']} ms, p99 {lag['pg_p99_ms']} ms")
    if args.projector:
        print(
            f"  assignments topic:       p50 {lag['assignments_p50_ms']} ms,"
            f" p99 {lag['assignments_p99_ms']} ms ({lag['assignments_records']} records)"
        )
    print(
        f"rebuild: {rebuild['rebuild_eps']:,}/s beside raw read {rebuild['raw_eps']:,}/s"
        f" (ratio {rebuild['ratio']}) over {rebuild['rebuild_events']} events"
    )
    return figures


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000, help="events/s written (5000)")
    parser.add_argument("--seconds", type=float, default=60, help="seconds of load (60)")
    parser.add_argument(
        "--events", type=int, default=300_000, help="events in the rebuilt log (300000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: env, else local infra)")
    parser.add_argument("--database-url", help="PostgreSQL (default: env, else local infra)")
    parser.add_argument(
        "--no-projector", dest="projector", action="store_false", help="the read model only"
    )
    return parser.parse_args()


if __name__ == "__main__":
    c.emit(asyncio.run(main(_args())))
