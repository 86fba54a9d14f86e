"""Decode benchmark: the CPU cost of strictly decoding one control event, in memory.

    .venv/bin/python bench/decode.py [--events 200000] [--seed 0] [--passes 5]

Encodes ``generate_history(events, seed=seed)`` once, then times
:func:`events.codec.decode_event` over every record, ``passes`` times, and reports the
median pass in microseconds per event. For comparison it also times the fast path alone
(``_decode_current``: the msgspec Structs of :mod:`events._fast.decoder`), session 1's fast
path (orjson, reshape in Python, the model's own ``validate_python``; kept here, not in the
codec), the strict check-by-check path (``_decode_checked``) and a bare ``orjson.loads``
(which a replay's raw read pays anyway). It counts the records the fast path leaves to the
strict path (our writer, ``encode``, should leave none). Then the last step of the fast
path alone, making a decoded event's model from its values: through BaseModel's slots, as
the generated builders do, and through the public ``model_construct`` (top-level model
only, nested ones already built), to show what the public API would cost. Then the
hand-over of :mod:`events._fast.handover` by chunks of 256 records, as a replay's reader
process and folding process split the decode: ``pack_events`` (the reader's share: every
check, into msgpack), ``unpack_events`` (the folder's share: the models rebuilt, no check)
and the bytes per event on the pipe, with the cyclic GC paused as the replay pauses it.
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

from events._fast.codegen import _new, _set_dict, _set_extra, _set_fields_set, _set_private
from events.base import ENVELOPE_FIELDS, Message
from events.codec import (
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
    """Session 1's fast path of the codec, verbatim, for the 'before' figure."""
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


def build_with_slots(item: tuple[type[Message], set[str], dict[str, Any]]) -> Message:
    """A model from its checked values, as the generated builders make it."""
    cls, fields_set, values = item
    message: Message = _new(cls)
    _set_dict(message, dict(values))
    _set_extra(message, None)
    _set_private(message, None)
    _set_fields_set(message, set(fields_set))
    return message


def build_with_model_construct(item: tuple[type[Message], set[str], dict[str, Any]]) -> Message:
    """The same model through pydantic's public ``model_construct``."""
    cls, fields_set, values = item
    return cls.model_construct(set(fields_set), **values)


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
    decoded = [_decode_current(raw) for raw in raws]
    misses = sum(1 for message in decoded if message is None)
    built = [(type(m), m.model_fields_set, m.__dict__) for m in decoded if m is not None]
    for item in built[:1000]:  # both builds give the decode's model
        assert build_with_model_construct(item) == build_with_slots(item)
    figures = {
        "decode_event_us": _median_us(decode_event, raws, args.passes),
        "fast_path_us": _median_us(_decode_current, raws, args.passes),
        "previous_fast_path_us": _median_us(previous_fast_path, raws, args.passes),
        "strict_path_us": _median_us(_decode_checked, raws, args.passes),
        "orjson_loads_us": _median_us(orjson.loads, raws, args.passes),
        "build_slots_us": _median_us(build_with_slots, built, args.passes),
        "build_model_construct_us": _median_us(build_with_model_construct, built, args.passes),
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
    print(f"fast-path miss: {misses} (decoded by the strict path instead)")
    for name, value in figures.items():
        print(f"{name:26s}{value:8.3f} us/event  (median of {args.passes} passes)")
    speedup = figures["previous_fast_path_us"] / figures["fast_path_us"]
    print(f"fast path vs previous: {speedup:.2f}x")
    extra = figures["build_model_construct_us"] - figures["build_slots_us"]
    print(f"model_construct costs: {extra:+.3f} us/event more than the slots")
    print(f"hand-over:             {packed_bytes:.0f} B/event packed (chunks of {HANDOVER_CHUNK})")
    return {
        "events": len(raws),
        "passes": args.passes,
        "mean_bytes": round(mean_bytes, 1),
        "fast_path_misses": misses,
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
