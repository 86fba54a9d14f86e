"""Decode benchmark: the CPU cost of strictly decoding one control event, in memory.

    .venv/bin/python bench/decode.py [--events 200000] [--seed 0] [--passes 5]

Encodes ``generate_history(events, seed=seed)`` once, then times
:func:`events.codec.decode_event` over every record, ``passes`` times, and reports the
median pass in microseconds per event. For comparison it also times the fast path alone
(``_decode_current``: msgspec first, then the wire validators), each of its two stages alone
(the msgspec Structs of :mod:`events._fast.decoder`; orjson + the pydantic-core wire validators of
:mod:`events._fast.wire`, the fast path before msgspec), the previous fast path (orjson, reshape in
Python, the model's own ``validate_python``; kept here, not in the codec), the full
check-by-check path (``_decode_checked``) and a bare ``orjson.loads`` (which a replay's raw
read pays anyway). Then the hand-over of :mod:`events._fast.handover` by chunks of 256 records, as
a replay's reader process and folding process split the decode: ``pack_events`` (the
reader's share: every check, into msgpack), ``unpack_events`` (the folder's share: the models
rebuilt, no check) and the bytes per event on the pipe, with the cyclic GC paused as the
replay pauses it.
Human-readable figures first; the last line is one JSON object. No Kafka needed.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from events.base import ENVELOPE_FIELDS, Message
from events.codec import (
    _FAST,
    _WIRE,
    CONTENT_TYPE,
    MESSAGE_TYPES,
    SPECVERSION,
    _decode_checked,
    _decode_current,
    decode_event,
    encode,
    pack_events,
    unpack_events,
)
from projections.io.replay_batch import DECODE_CHUNK as HANDOVER_CHUNK
from projections.testing.synthetic import generate_history

_CURRENT = {name: (cls, cls.SCHEMA_VERSION) for name, cls in MESSAGE_TYPES.items()}
_CLASH = frozenset({"type", *ENVELOPE_FIELDS})


def previous_fast_path(raw: bytes) -> Message | None:
    """The codec's fast path before the wire validators, verbatim, for the 'before' figure."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict:
        return None
    type_ = obj.pop("type", None)
    current = _CURRENT.get(type_) if type(type_) is str else None
    data = obj.pop("data", None)
    version = obj.pop("schemaversion", 1)
    if (
        current is None
        or type(data) is not dict
        or obj.pop("specversion", None) != SPECVERSION
        or obj.pop("datacontenttype", CONTENT_TYPE) != CONTENT_TYPE
        or type(version) is not int
        or version != current[1]
    ):
        return None
    obj.pop("subject", None)
    if not (obj.keys() <= ENVELOPE_FIELDS and data.keys().isdisjoint(_CLASH)):
        return None
    obj.update(data)
    obj["type"] = type_
    try:
        message: Message = current[0].__pydantic_validator__.validate_python(obj)
    except ValidationError:
        return None
    return message


def wire_path(raw: bytes) -> Message | None:
    """The fast path before msgspec: orjson, then the type's pydantic-core wire validator."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return _WIRE.decode(obj)


def _median_us(
    fn: Callable[[Any], Any], items: list[Any], passes: int, records: int | None = None
) -> float:
    """Median over ``passes`` of the time per record of ``fn`` over every item, in
    microseconds (``records``: how many records the items hold, default one each)."""
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) / (records or len(items)) * 1e6


def main(args: argparse.Namespace) -> dict[str, object]:
    raws = [encode(event) for event in generate_history(args.events, seed=args.seed)]
    mean_bytes = sum(map(len, raws)) / len(raws)
    misses = sum(1 for raw in raws if _decode_current(raw) is None)
    msgspec_misses = sum(1 for raw in raws if _FAST.decode(raw) is None)
    figures = {
        "decode_event_us": _median_us(decode_event, raws, args.passes),
        "fast_path_us": _median_us(_decode_current, raws, args.passes),
        "msgspec_path_us": _median_us(_FAST.decode, raws, args.passes),
        "wire_path_us": _median_us(wire_path, raws, args.passes),
        "previous_fast_path_us": _median_us(previous_fast_path, raws, args.passes),
        "full_path_us": _median_us(_decode_checked, raws, args.passes),
        "orjson_loads_us": _median_us(orjson.loads, raws, args.passes),
    }
    chunks = [raws[i : i + HANDOVER_CHUNK] for i in range(0, len(raws), HANDOVER_CHUNK)]
    blobs = [pack_events(chunk) for chunk in chunks]
    if any(blob is None for blob in blobs):
        raise SystemExit("a generated chunk was refused by pack_events")
    n = len(raws)
    gc.disable()  # as the replay's two processes run them (the cyclic GC paused per batch)
    try:
        figures["pack_us"] = _median_us(pack_events, chunks, args.passes, n)
        figures["unpack_us"] = _median_us(unpack_events, blobs, args.passes, n)
    finally:
        gc.enable()
    packed_bytes = sum(len(blob) for blob in blobs if blob is not None) / n
    print(f"records:        {len(raws)} control events, {mean_bytes:.0f} B on average")
    print(f"fast-path miss: {misses} (decoded by the full path instead)")
    print(f"msgspec miss:   {msgspec_misses} (decoded by the wire validators or full path)")
    for name, value in figures.items():
        print(f"{name:22s}{value:8.3f} us/event  (median of {args.passes} passes)")
    speedup = figures["previous_fast_path_us"] / figures["fast_path_us"]
    print(f"fast path vs previous: {speedup:.2f}x")
    print(f"msgspec vs wire path:  {figures['wire_path_us'] / figures['msgspec_path_us']:.2f}x")
    print(f"hand-over:             {packed_bytes:.0f} B/event packed (chunks of {HANDOVER_CHUNK})")
    return {
        "events": len(raws),
        "passes": args.passes,
        "mean_bytes": round(mean_bytes, 1),
        "fast_path_misses": misses,
        "msgspec_misses": msgspec_misses,
        "fast_path_speedup": round(speedup, 3),
        "packed_bytes": round(packed_bytes, 1),
        **{name: round(value, 3) for name, value in figures.items()},
    }


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="records to decode")
    parser.add_argument("--seed", type=int, default=0, help="generator seed")
    parser.add_argument("--passes", type=int, default=5, help="timed passes (median kept)")
    return parser.parse_args()


if __name__ == "__main__":
    print(orjson.dumps(main(_args())).decode())
