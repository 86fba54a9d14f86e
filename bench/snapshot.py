"""Snapshot benchmark: what the orchestrator's snapshot of a large state costs, from scratch and
with the :class:`projections.fold.canonical.JsonMemo` the snapshotter keeps between snapshots.

    .venv/bin/python bench/snapshot.py [--events 20000] [--instances 1000] [--streams 5000]
                                       [--enrollments 10000] [--changes 100] [--rounds 5]

The state is the fold of a generated history (``projections.testing.synthetic``) plus
``--enrollments`` enrolled keys. Per round (medians reported), in one process:

- ``scratch_ms``: ``make_snapshot(state)`` with a fresh memo (the first snapshot);
- ``memo_ms``: ``make_snapshot`` of the same state with ``--changes`` streams and enrollments
  replaced by equal copies (changed records), with the memo of the previous snapshot;
- ``encode_ms``: ``encode_snapshot`` (the record value: JSON, zlib level 1), beside
  ``encode_before_ms``: the same bytes made as before session 8 (pydantic dumping the whole
  state again before orjson).

``ratio = memo_ms / scratch_ms``. No Kafka, no clock but the timer. Figures first; the last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import random
import statistics
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import immutables
import orjson

from projections.fold import fold
from projections.fold.canonical import JsonMemo
from projections.fold.snapshots import encode_snapshot, make_snapshot
from projections.fold.state import ClusterState, Enrollment
from projections.testing.synthetic import generate_history

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _state(args: argparse.Namespace) -> ClusterState:
    history = generate_history(
        args.events, seed=args.seed, instances=args.instances, streams=args.streams
    )
    state = fold(history)
    rng = random.Random(args.seed)
    enrolled = immutables.Map(
        {
            f"w{i}": Enrollment(
                f"w{i}", base64.b64encode(rng.randbytes(32)).decode(), f"k{i:08x}", T0, "bench"
            )
            for i in range(args.enrollments)
        }
    )
    return dataclasses.replace(state, enrolled=enrolled)


def _touched(state: ClusterState, n: int) -> ClusterState:
    """``state`` with ``n`` streams and ``n`` enrollments replaced by equal copies."""
    streams, enrolled = state.streams.mutate(), state.enrolled.mutate()
    for key in list(state.streams)[:n]:
        streams[key] = dataclasses.replace(state.streams[key])
    for key in list(state.enrolled)[:n]:
        enrolled[key] = dataclasses.replace(state.enrolled[key])
    return dataclasses.replace(state, streams=streams.finish(), enrolled=enrolled.finish())


def _timed(f: Callable[[], Any]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = f()
    return (time.perf_counter() - began) * 1000, result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=20_000)
    p.add_argument("--instances", type=int, default=1_000)
    p.add_argument("--streams", type=int, default=5_000)
    p.add_argument("--enrollments", type=int, default=10_000)
    p.add_argument("--changes", type=int, default=100, help="records changed between snapshots")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=3)
    args = p.parse_args()
    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC; building the state...", flush=True)
    state = _state(args)
    scratch, memo_ms, encode, encode_before = [], [], [], []
    size = 0
    for round_ in range(args.rounds):
        memo = JsonMemo()
        ms, _ = _timed(lambda: make_snapshot(state, log_offset=1, taken_at=T0, memo=memo))  # noqa: B023
        scratch.append(ms)
        changed = _touched(state, args.changes)
        ms, second = _timed(lambda: make_snapshot(changed, log_offset=2, taken_at=T0, memo=memo))  # noqa: B023
        memo_ms.append(ms)
        assert second.digest == make_snapshot(changed, log_offset=2, taken_at=T0).digest
        ms, raw = _timed(lambda: encode_snapshot(second))  # noqa: B023
        encode.append(ms)
        ms, old = _timed(lambda: zlib.compress(orjson.dumps(second.model_dump(mode="json")), 1))  # noqa: B023
        encode_before.append(ms)
        assert old == raw
        size = len(raw)
        print(
            f"round {round_ + 1}: scratch {scratch[-1]:.0f} ms, with memo {memo_ms[-1]:.0f} ms, "
            f"encode {encode[-1]:.0f} ms (before: {encode_before[-1]:.0f} ms), "
            f"record {size / 1e6:.2f} MB",
            flush=True,
        )
    result = {
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC",
        "streams": len(state.streams),
        "instances": len(state.instances),
        "enrollments": len(state.enrolled),
        "changes": args.changes,
        "scratch_ms": round(statistics.median(scratch), 1),
        "memo_ms": round(statistics.median(memo_ms), 1),
        "encode_ms": round(statistics.median(encode), 1),
        "encode_before_ms": round(statistics.median(encode_before), 1),
        "ratio": round(statistics.median(memo_ms) / statistics.median(scratch), 3),
        "record_bytes": size,
    }
    print(orjson.dumps(result).decode())


if __name__ == "__main__":
    main()
