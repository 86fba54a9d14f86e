"""Replay benchmark: how close does a full replay come to the raw speed of reading the log?

    .venv/bin/python bench/replay.py [--events 1000000] [--seed 0] [--rounds 3]
                                     [--bootstrap HOST:PORT]

On one log of generated control events in Kafka (written once into a topic named after the
count and seed, and reused while it holds exactly that many records), in one run, ``rounds``
times back to back:

(a) raw limit: aiokafka read (the same consumer settings and ``getmany`` loop as replay)
    plus ``orjson.loads`` of each value, nothing else (read before and after (b), the faster
    kept);
(b) full replay: :func:`projections.io.replay.replay`, i.e. read + strict decode + fold, as it
    runs by default (for a log this long on a multi-core machine, the records are read and
    checked in a child process while this one folds: :mod:`projections.io.prefetch`);

then once (b') the same replay with everything in this one process (``prefetch="off"``), for
comparison, the pure in-memory fold rate over already-decoded events, and the peak RSS of
this process and of the reader process. Target: ``ratio = replay_eps / raw_eps >= 0.5``, those of
the round with the median ratio: (b) uses two cores and (a) one, so time stolen from either core
by a neighbour on a shared machine moves one round's ratio more than a slower machine would.
Human-readable figures first; the last line is one JSON object.

The bootstrap comes from ``--bootstrap``, else ``STREAMPLANE_KAFKA_BOOTSTRAP``, else the
local infrastructure (``control_plane.tools.infra.ensure_up``) is started or reused.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from collections.abc import Iterator

import orjson
from aiokafka import TopicPartition

from events.codec import encode
from events.topics import EVENTS, Topics
from projections.fold import fold
from projections.io.kafka import (
    end_offsets,
    make_consumer,
    make_producer,
    publish,
    started,
)
from projections.io.replay import ReplayProgress, ReplaySettings, replay
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history, iter_history

NET = 60.0  # seconds for any single Kafka operation here


def _bootstrap(arg: str | None) -> str:
    if arg:
        return arg
    if env := os.environ.get("STREAMPLANE_KAFKA_BOOTSTRAP"):
        return env
    from control_plane.tools.infra import ensure_up

    address = ensure_up(brokers=1, postgres=False).kafka_bootstrap
    assert address is not None
    return address


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KiB on Linux


def _encoded(n: int, seed: int) -> Iterator[bytes]:
    for event in iter_history(n, seed=seed):
        yield encode(event)


async def prepare_log(bootstrap: str, events: int, seed: int, fresh: bool) -> str:
    """The topic holding exactly ``events`` generated events; written only when needed."""
    topics = Topics(f"bench-replay-{events}-s{seed}")
    topic = topics.events
    await ensure_topics(bootstrap, topics, (EVENTS,))
    end = (await end_offsets(bootstrap, topic))[0]
    if end == events and not fresh:
        print(f"reusing {topic} ({end} records)")
        return topic
    if end:  # half-written by an interrupted run, or --fresh: start from an empty topic
        topics = Topics(f"bench-replay-{events}-s{seed}-{int(time.time())}")
        topic = topics.events
        await ensure_topics(bootstrap, topics, (EVENTS,))
    print(f"writing {events} events to {topic} ...", flush=True)
    t0 = time.perf_counter()
    async with started(make_producer(bootstrap), kafka_timeout=NET) as producer:
        written = await publish(producer, topic, _encoded(events, seed), kafka_timeout=NET)
    print(f"  wrote {written} in {time.perf_counter() - t0:.1f}s (generate + encode + produce)")
    return topic


async def raw_read(bootstrap: str, topic: str, cfg: ReplaySettings) -> tuple[int, float]:
    """(a): read every record with replay's consumer settings and ``orjson.loads`` it."""
    consumer = make_consumer(
        bootstrap,
        auto_offset_reset="none",
        max_partition_fetch_bytes=cfg.max_partition_fetch_bytes,
        fetch_max_bytes=cfg.fetch_max_bytes,
    )
    tp = TopicPartition(topic, 0)
    loads = orjson.loads
    count = 0
    async with started(consumer, kafka_timeout=NET):
        consumer.assign([tp])
        async with asyncio.timeout(NET):
            end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, 0)
        t0 = time.perf_counter()
        position = 0
        while position < end:
            async with asyncio.timeout(NET):
                batches = await consumer.getmany(
                    tp, timeout_ms=cfg.poll_timeout_ms, max_records=cfg.max_records
                )
                position = await consumer.position(tp)
            for record in batches.get(tp, ()):
                loads(record.value)
                count += 1
        return count, time.perf_counter() - t0


async def full_replay(bootstrap: str, topic: str, cfg: ReplaySettings) -> tuple[int, float, str]:
    """(b): the real thing, as auditors and the CLI run it."""

    def progress(p: ReplayProgress) -> None:
        print(f"  replay at offset {p.offset}/{p.stop_offset}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    result = await replay(bootstrap, topic, on_progress=progress, settings=cfg)
    elapsed = time.perf_counter() - t0
    if result.rejected or result.state.finding_count:
        raise SystemExit(f"bench log is not clean: {result.rejected} rejected, findings")
    return result.events, elapsed, result.reader


def memory_fold(events: int, seed: int) -> tuple[int, float]:
    """Pure fold rate over events already in memory (decoded)."""
    history = generate_history(events, seed=seed)
    t0 = time.perf_counter()
    fold(history)
    return len(history), time.perf_counter() - t0


async def main(args: argparse.Namespace) -> dict[str, object]:
    bootstrap = _bootstrap(args.bootstrap)
    cfg = ReplaySettings()
    topic = await prepare_log(bootstrap, args.events, args.seed, args.fresh)
    rounds: list[tuple[float, float]] = []  # (raw_eps, replay_eps) of each round
    for i in range(args.rounds):
        # Read twice, before and after the replay, and keep the faster: the page cache is
        # warm for both, and the ratio is measured against the better raw figure.
        raws = [await raw_read(bootstrap, topic, cfg)]
        n_replay, t_replay, reader = await full_replay(bootstrap, topic, cfg)
        raws.append(await raw_read(bootstrap, topic, cfg))
        n_raw, t_raw = min(raws, key=lambda r: r[1])
        rounds.append((n_raw / t_raw, n_replay / t_replay))
        raw_i, replay_i = rounds[-1]
        print(
            f"round {i + 1}/{args.rounds}: raw {raw_i:,.0f}/s, replay {replay_i:,.0f}/s,"
            f" ratio {replay_i / raw_i:.3f}",
            flush=True,
        )
    alone = cfg.model_copy(update={"prefetch": "off"})
    n_alone, t_alone, _ = await full_replay(bootstrap, topic, alone)
    peak = _peak_rss_mb()
    peak_child = _peak_rss_mb(resource.RUSAGE_CHILDREN)  # the reader process, if any
    n_fold, t_fold = memory_fold(min(args.events, args.fold_events), args.seed)
    ratios = [replay / raw for raw, replay in rounds]
    # the round whose ratio is the median (the lower one of two): its figures are reported,
    # so that ratio == replay_eps / raw_eps still holds
    raw_eps, replay_eps = sorted(rounds, key=lambda r: r[1] / r[0])[(len(rounds) - 1) // 2]
    ratio = replay_eps / raw_eps
    fold_eps, alone_eps = n_fold / t_fold, n_alone / t_alone
    print(f"log:          {topic} @ {bootstrap}, {n_replay} records")
    print(f"(a) raw:      {raw_eps:12,.0f} events/s  (median round, read + orjson.loads)")
    print(
        f"(b) replay:   {replay_eps:12,.0f} events/s  (median round, read + decode + fold,"
        f" read in {'a child process' if reader == 'child' else 'this process'})"
    )
    print(f"(b') 1 proc:  {alone_eps:12,.0f} events/s  ({t_alone:.2f}s, all in this process)")
    print(f"ratio b/a:    {ratio:12.3f}  (median of {len(ratios)} rounds; target >= 0.5)")
    print(f"fold only:    {fold_eps:12,.0f} events/s  ({n_fold} decoded events in memory)")
    print(f"peak RSS:     {peak:12.1f} MiB (this process), {peak_child:.1f} MiB (reader)")
    return {
        "events": n_replay,
        "rounds": len(rounds),
        "raw_eps": round(raw_eps),
        "replay_eps": round(replay_eps),
        "ratio": round(ratio, 4),  # the median round's; == replay_eps / raw_eps
        "ratios": [round(r, 4) for r in ratios],
        "reader": reader,
        "replay_one_process_eps": round(alone_eps),
        "ratio_one_process": round(alone_eps / raw_eps, 4),  # against the median round's raw
        "fold_eps": round(fold_eps),
        "fold_events": n_fold,
        "peak_rss_mb": round(peak, 1),
        "peak_rss_reader_mb": round(peak_child, 1),
        "topic": topic,
    }


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="log length")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: env, else local infra)")
    parser.add_argument(
        "--fold-events",
        type=int,
        default=200_000,
        help="events for the in-memory fold rate (held decoded in memory; default 200000)",
    )
    parser.add_argument("--fresh", action="store_true", help="write a new log even if one exists")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="raw/replay rounds; the round with the median ratio is reported (default 3)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    figures = asyncio.run(main(_args()))
    print(orjson.dumps(figures).decode())
