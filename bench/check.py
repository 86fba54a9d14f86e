"""Consistency-check benchmark: a full ``streamplane check`` against the replay it rests on.

    .venv/bin/python bench/check.py [--events 1000000] [--instances 1000] [--streams 100000]
                                    [--seed 0] [--rounds 3] [--bootstrap HOST:PORT]

On one log of generated control events (``projections.testing.synthetic``, hovering around
``--instances`` instances and ``--streams`` streams; written once under a prefix named after
the sizes and seed, and reused), in one run, ``rounds`` times back to back:

(b) the replay: :func:`projections.io.replay.replay` of the whole log, as every auditor runs it;
(c) the full check: :func:`control_plane.checker_run.run_check`, i.e. the same replay, then the
    views read (the ``desired`` topic: one record per instance; the ``assignments`` topic: one
    record per stream; the heartbeats: one per active instance, all written before each round
    from the replayed state, as a consistent system shows them) and compared by the pure
    checker. The PostgreSQL read model is left out (its comparison is that of ``audit drift``,
    measured with the read-model benchmarks).

Target: ``ratio = check_s / replay_s <= 1.5``, of the round with the median ratio. Figures
first; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import bootstrap as _bootstrap
from bench._common import emit
from control_plane.checker_run import CheckSettings, run_check
from control_plane.decide.checker import ideal_views
from events.codec import encode
from events.topics import ALL_TOPICS, Topics
from projections.fold.assignments import assignment_value
from projections.fold.state import ClusterState
from projections.io.kafka import end_offsets, ensure_topics, make_producer, publish, started
from projections.io.read_store import ReadModelSettings
from projections.io.replay import ReplayProgress, ReplaySettings, replay
from projections.testing.synthetic import iter_history

NET = 60.0


def _progress(p: ReplayProgress) -> None:
    print(f"  replay at offset {p.offset}/{p.stop_offset}", file=sys.stderr, flush=True)


async def prepare_log(bootstrap: str, args: argparse.Namespace) -> Topics:
    """The prefix whose events topic holds exactly ``args.events`` generated events."""
    name = f"bench-check-{args.events}-i{args.instances}-st{args.streams}-s{args.seed}"
    topics = Topics(name)
    await ensure_topics(bootstrap, topics, ALL_TOPICS)
    end = (await end_offsets(bootstrap, topics.events))[0]
    if end == args.events:
        print(f"reusing {topics.events} ({end} records)")
        return topics
    if end:  # half-written by an interrupted run: start again under a new name
        topics = Topics(f"{name}-{int(time.time())}")
        await ensure_topics(bootstrap, topics, ALL_TOPICS)
    print(f"writing {args.events} events to {topics.events} ...", flush=True)
    t0 = time.perf_counter()
    history = iter_history(
        args.events, seed=args.seed, instances=args.instances, streams=args.streams
    )
    async with started(make_producer(bootstrap), kafka_timeout=NET) as producer:
        written = await publish(
            producer, topics.events, (encode(e) for e in history), kafka_timeout=NET
        )
    print(f"  wrote {written} in {time.perf_counter() - t0:.1f}s")
    return topics


async def write_views(bootstrap: str, topics: Topics, state: ClusterState) -> dict[str, int]:
    """The desired sets, assignment records and heartbeats of a consistent system at
    ``state`` (heartbeats sent now, so that the check finds them fresh)."""
    views = ideal_views(state, now=datetime.now(UTC))
    assert views.desired is not None and views.heartbeats is not None
    async with started(make_producer(bootstrap), kafka_timeout=NET) as producer:
        for sid, ds in views.desired.items():
            await producer.send(topics.desired, encode(ds), key=sid.encode())
        for sid, seen in views.heartbeats.items():
            await producer.send(topics.heartbeats, encode(seen.heartbeat), key=sid.encode())
        for key, stream in state.streams.items():
            value = assignment_value(
                stream,
                seq=state.seq,
                epoch=state.epoch,
                time=state.last_event_time,
                reason="bench",
            )
            await producer.send(topics.assignments, orjson.dumps(value), key=key.encode())
        await producer.flush()
    return {
        "desired": len(views.desired),
        "heartbeats": len(views.heartbeats),
        "assignments": len(state.streams),
    }


async def one_round(bootstrap: str, topics: Topics) -> dict[str, object]:
    cfg = ReplaySettings()
    t0 = time.perf_counter()
    head = await replay(bootstrap, topics.events, on_progress=_progress, settings=cfg)
    replay_s = time.perf_counter() - t0
    written = await write_views(bootstrap, topics, head.state)
    rm = ReadModelSettings(kafka_bootstrap=bootstrap, topic_prefix=topics.prefix)
    # a generated log's clock is not now: its streams would wait for hours, its owners be
    # silent for long; and a heartbeat written before a minute's replay is not stale
    check = CheckSettings(unassigned_after=1e9, silent_after=1e9, heartbeat_fresh=1e9)
    t0 = time.perf_counter()
    run = await run_check(rm, check, read_model=False, assignments=True, on_progress=_progress)
    check_s = time.perf_counter() - t0
    return {
        "replay_s": replay_s,
        "check_s": check_s,
        "events": head.events,
        "streams": len(head.state.streams),
        "instances": len(head.state.instances),
        "written": written,
        "counts": run.report.counts,
        "checked": run.report.checked,
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    bootstrap = _bootstrap(args.bootstrap)
    topics = await prepare_log(bootstrap, args)
    rounds = []
    for i in range(args.rounds):
        r = await one_round(bootstrap, topics)
        rounds.append(r)
        ratio = float(r["check_s"]) / float(r["replay_s"])  # type: ignore[arg-type]
        print(
            f"round {i + 1}/{args.rounds}: replay {r['replay_s']:.2f}s, check {r['check_s']:.2f}s,"
            f" ratio {ratio:.3f}; divergences {r['counts'] or 'none'}",
            flush=True,
        )
    median = sorted(rounds, key=lambda r: float(r["check_s"]) / float(r["replay_s"]))  # type: ignore[arg-type]
    pick = median[(len(median) - 1) // 2]
    replay_s, check_s = float(pick["replay_s"]), float(pick["check_s"])  # type: ignore[arg-type]
    print(f"log:      {topics.events} @ {bootstrap}: {pick['events']} events")
    print(f"state:    {pick['streams']} streams, {pick['instances']} instances")
    print(f"replay_s: {replay_s:.2f}  check_s: {check_s:.2f}  ratio {check_s / replay_s:.3f}")
    return {
        "events": pick["events"],
        "streams": pick["streams"],
        "instances": pick["instances"],
        "rounds": len(rounds),
        "replay_s": round(replay_s, 3),
        "check_s": round(check_s, 3),
        "ratio": round(check_s / replay_s, 4),
        "ratios": [round(float(r["check_s"]) / float(r["replay_s"]), 4) for r in rounds],  # type: ignore[arg-type]
        "divergences": pick["counts"],
        "checked": pick["checked"],
        "topic": topics.events,
    }


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="log length")
    parser.add_argument("--instances", type=int, default=1000, help="instances (about)")
    parser.add_argument("--streams", type=int, default=100_000, help="streams (about)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--rounds", type=int, default=3, help="replay/check rounds")
    parser.add_argument("--bootstrap", help="Kafka bootstrap (default: env, else local infra)")
    return parser.parse_args()


if __name__ == "__main__":
    emit(asyncio.run(main(_args())))
