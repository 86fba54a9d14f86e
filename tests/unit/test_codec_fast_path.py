"""The codec's two paths agree: the fast path gives the strict path's object, or None.

``_decode_current(raw)`` (the fast path, ``events._fast.decoder``) must give None or an object
identical to ``_decode_checked(raw)`` (the strict path): same type, same ``__dict__`` in the
same order (datetimes with the very same tzinfo), same ``model_fields_set``; and None
whenever the strict path raises. ``test_codec_msgspec.py`` holds the msgspec decoder alone
to the same properties and to its known traps.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from event_examples import all_examples, example
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from test_events_properties import MESSAGES

from events.base import Message
from events.codec import _FAST, _decode_checked, _decode_current, decode, encode
from events.control import CONTROL_EVENT_TYPES
from events.errors import EventError
from projections.testing.synthetic import generate_history

HISTORY = generate_history(5000, seed=0) + generate_history(2000, seed=7)
EXAMPLES = all_examples()
BASES = [*EXAMPLES, *HISTORY[:300:3]]


def _same_values(a: Any, b: Any) -> bool:
    """Equal, of the same type, and every datetime (nested too) with the same tzinfo."""
    if type(a) is not type(b):
        return False
    if isinstance(a, datetime):
        return a == b and a.tzinfo is b.tzinfo
    if isinstance(a, BaseModel):  # nested models too
        return _identical(a, b)
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(map(_same_values, a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_values(a[k], b[k]) for k in a)
    return bool(a == b)


def _identical(fast: Any, strict: Any) -> bool:
    return (
        type(fast) is type(strict)
        and list(fast.__dict__) == list(strict.__dict__)  # the order model_dump follows
        and all(_same_values(fast.__dict__[k], strict.__dict__[k]) for k in strict.__dict__)
        and fast.model_fields_set == strict.model_fields_set
        and type(fast.model_fields_set) is type(strict.model_fields_set)
        and fast.__pydantic_extra__ == strict.__pydantic_extra__
        and fast.__pydantic_private__ == strict.__pydantic_private__
    )


def agree(
    decode: Callable[[bytes | str], Message | None],
    name: str,
    raw: bytes | str,
    *,
    record: bool = False,
) -> Message | None:
    """Assert the path ``decode`` (called ``name``) is None or identical to the strict path;
    None when the strict path raises.

    ``record``: note the outcome in Hypothesis' statistics (``--hypothesis-show-statistics``).
    """
    fast = decode(raw)
    try:
        strict = _decode_checked(raw)
    except EventError:
        assert fast is None, f"{name} accepted what the strict path rejects: {raw!r}"
        if record:
            event("rejected by both")
        return None
    assert fast is None or _identical(fast, strict), f"{name} differs on {raw!r}"
    if record:
        event("strict path only" if fast is None else f"{name}, identical")
    return fast


def _agree(raw: bytes | str, *, record: bool = False) -> Message | None:
    return agree(_decode_current, "fast path", raw, record=record)


# --- valid messages: the fast path takes every one, identically ---------------------------


def test_every_type_has_a_fast_path() -> None:
    assert _FAST.unsupported() == {}
    assert {type(e) for e in HISTORY} == set(CONTROL_EVENT_TYPES)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_example_decodes_identically(message: Message) -> None:
    raw = encode(message)
    fast = _agree(raw)
    assert fast is not None
    assert encode(fast) == raw
    assert _agree(raw.decode()) is not None  # str input too


def test_a_generated_history_decodes_identically() -> None:
    for logged in HISTORY:
        raw = encode(logged)
        fast = _agree(raw)
        assert fast is not None, raw
        assert fast == logged


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_generated_messages_decode_identically(message: Message) -> None:
    assert _agree(encode(message)) is not None


def test_omitted_optional_fields_get_the_model_defaults() -> None:
    wire = orjson.loads(encode(example("StreamRegistered")))
    for name in ("weight", "priority", "zone", "params"):
        del wire["data"][name]
    for name in ("causationid", "datacontenttype", "subject", "schemaversion"):
        del wire[name]
    fast = _agree(orjson.dumps(wire))
    assert fast is not None
    assert "weight" not in fast.model_fields_set and "causationid" not in fast.model_fields_set
    assert fast.params == {}  # type: ignore[attr-defined]


# --- unusual input the strict path accepts: the fast path leaves it to it -------------------


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("data", "stream_id"), 42, "42"),
        (("time",), "2026-11-28T22:00:00.123456+02:00", datetime(2026, 11, 28, 20, 0, 0, 123456)),
        (("time",), 1_700_000_000, datetime(2023, 11, 14, 22, 13, 20)),
        (("time",), "2026-11-28 20:00:00.123456Z", datetime(2026, 11, 28, 20, 0, 0, 123456)),
        (("time",), "2026-11-28T20:00:00.1234567Z", datetime(2026, 11, 28, 20, 0, 0, 123456)),
    ],
)
def test_unusual_but_valid_input_takes_the_strict_path(
    path: tuple[str, ...], value: Any, expected: Any
) -> None:
    wire = orjson.loads(encode(example("StreamAssigned")))
    _set(wire, path, value)
    raw = orjson.dumps(wire)
    assert _decode_current(raw) is None
    decoded = decode(raw)
    got = decoded.__dict__[path[-1]]
    if isinstance(expected, datetime):
        assert got == expected.replace(tzinfo=UTC) and got.tzinfo is UTC
    else:
        assert got == expected


@pytest.mark.parametrize("value", ["42", 42.0, " 42 "])
def test_lax_values_the_model_accepts_decode_identically_on_the_strict_path(value: Any) -> None:
    """No writer of ours writes them (``encode`` writes a JSON integer); the model (lax)
    accepts them, and the strict path gives what the integer gives."""
    wire = orjson.loads(encode(example("StreamAssigned")))
    wire["seq"] = value
    raw = orjson.dumps(wire)
    assert _agree(raw) is None  # left to the strict path
    decoded = decode(raw)
    assert decoded.seq == 42  # type: ignore[attr-defined]
    wire["seq"] = 42
    assert _identical(decoded, decode(orjson.dumps(wire)))


def _set(wire: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = wire
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


# --- UTC timestamps: the fast path's own parsing equals the strict path's -------------------


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(0, 9),
    st.sampled_from(["Z", "+00:00", "-00:00", "+01:00", "z", ""]),
    st.sampled_from(["T", "t", " "]),
)
def test_timestamps_agree(moment: datetime, digits: int, zone: str, sep: str) -> None:
    text = f"{moment.year:04d}-{moment:%m-%d}{sep}{moment:%H:%M:%S}"
    if digits:
        text += "." + f"{moment.microsecond:06d}{moment.microsecond % 1000:03d}"[:digits]
    wire = orjson.loads(encode(example("InstanceQuarantined")))
    wire["time"] = wire["data"]["until"] = text + zone
    fast = _agree(orjson.dumps(wire), record=True)
    if sep == "T" and zone in ("Z", "+00:00") and digits <= 6:
        assert fast is not None


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-04-31T00:00:00Z",
    ],
)
def test_impossible_days_are_rejected_by_both(text: str) -> None:
    wire = orjson.loads(encode(example("StreamStarted")))
    wire["time"] = text
    with pytest.raises(EventError):
        decode(orjson.dumps(wire))
    assert _decode_current(orjson.dumps(wire)) is None


# --- mutated wire forms: None, or what the strict path gives --------------------------------

SPECIAL_TEXT = [
    "",
    "w-1\n",
    "w 1",
    "x" * 129,
    "2026-11-28T20:00:00Z",
    "2026-11-28T20:00:00+02:00",
    "2026-11-28T20:00:00",
    "1.0",
    "1",
    "true",
    "application/json",
    "StreamAssigned",
    "10.0.0.7",
    "::1",
    "running",
    "nan",
]
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 1.0, 1.5, -0.0, 1e300, 5e-324]),
    st.text(max_size=6),
    st.sampled_from(SPECIAL_TEXT),
    st.lists(st.integers(-3, 3) | st.sampled_from(["a", "w-1"]), max_size=2),
    st.dictionaries(st.sampled_from(["a", "stream_id", "state", "url"]), st.text(max_size=3)),
)
EXTRA_KEYS = ["extra", "seq", "epoch", "id", "type", "source", "time", "subject", "data", "x"]
NUMBER = re.compile(rb"(?<=[:\[,])-?[0-9]+(\.[0-9]+)?(?=[,}\]])")
BAD_NUMBERS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"18446744073709551616", b"1E2"]


def _places(wire: dict[str, Any]) -> list[tuple[dict[str, Any] | list[Any], Any]]:
    """Every (container, key) one level into the envelope, into data, and below it."""
    places: list[tuple[dict[str, Any] | list[Any], Any]] = [(wire, k) for k in wire]
    data = wire.get("data")
    if isinstance(data, dict):
        places += [(data, k) for k in data]
        for value in data.values():
            if isinstance(value, dict):
                places += [(value, k) for k in value]
            elif isinstance(value, list):
                places += [(value, i) for i in range(len(value))]
                places += [(v, k) for v in value if isinstance(v, dict) for k in v]
    return places


def _mutate(wire: dict[str, Any], draw: st.DataObject) -> None:
    kind = draw.draw(st.sampled_from(["drop", "add", "set", "set", "version", "int-id"]))
    container, key = draw.draw(st.sampled_from(_places(wire)))
    if kind == "drop":
        del container[key]
    elif kind == "add":
        target = draw.draw(st.sampled_from([wire, wire.get("data")]))
        if isinstance(target, dict):
            target[draw.draw(st.sampled_from(EXTRA_KEYS))] = draw.draw(JSON_VALUES)
    elif kind == "set":
        container[key] = draw.draw(JSON_VALUES)
    elif kind == "version":
        wire["schemaversion"] = draw.draw(st.sampled_from([0, 1, 2, 3, True, 1.0, 2.0, "1", None]))
    elif isinstance(container[key], str):  # "int-id": the strict path makes "42" of 42
        container[key] = draw.draw(st.integers(-5, 10**6))


def mutated(message: Message, rounds: int, draw: st.DataObject) -> Any:
    """``message``'s wire form after ``rounds`` of :func:`_mutate` (what is left of it)."""
    wire = orjson.loads(encode(message))
    for _ in range(rounds):
        if isinstance(wire, dict) and _places(wire):
            _mutate(wire, draw)
    return wire


def _raw_mutation(raw: bytes, draw: st.DataObject) -> bytes:
    kind = draw.draw(st.sampled_from(["none", "none", "number", "duplicate", "space"]))
    if kind == "number" and (numbers := list(NUMBER.finditer(raw))):
        found = draw.draw(st.sampled_from(numbers))
        return raw[: found.start()] + draw.draw(st.sampled_from(BAD_NUMBERS)) + raw[found.end() :]
    if kind == "duplicate":
        at = draw.draw(st.sampled_from([1, raw.find(b'"data":{') + len(b'"data":{')]))
        pair = draw.draw(st.sampled_from([b'"seq":0,', b'"id":"",', b'"stream_id":"x y",']))
        return raw[:at] + pair + raw[at:]
    if kind == "space":
        return b" \n" + raw.replace(b",", b" , ") + b"\t"
    return raw


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(BASES), st.integers(1, 3), st.data())
def test_mutated_wire_forms_never_differ(
    message: Message, rounds: int, draw: st.DataObject
) -> None:
    wire = mutated(message, rounds, draw)
    # the stdlib writes integers beyond 64 bits (orjson cannot) and lone surrogates
    text = json.dumps(wire, separators=(",", ":"), ensure_ascii=draw.draw(st.booleans()))
    _agree(_raw_mutation(text.encode("utf-8", "surrogatepass"), draw), record=True)


def test_nested_models_keep_their_own_validators() -> None:
    wire = orjson.loads(encode(example("Heartbeat")))
    wire["data"]["streams"][0]["stream_id"] = 17  # StreamReport's _int_to_str makes it "17"
    raw = orjson.dumps(wire)
    assert _agree(raw) is None  # the fast path takes ids as strings only
    decoded = decode(raw)
    assert decoded.streams[0].stream_id == "17"  # type: ignore[attr-defined]
    wire["data"]["streams"][0]["stream_id"] = "17"
    assert _identical(decoded, decode(orjson.dumps(wire)))


@pytest.mark.parametrize(
    ("name", "value"),
    [("port", 2**64), ("port", 65535.5), ("max_streams", True), ("ip", 167772167), ("zone", "")],
)
def test_edge_values_agree(name: str, value: Any) -> None:
    wire = orjson.loads(encode(example("Heartbeat")))
    wire["data"][name] = value
    _agree(json.dumps(wire))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b"null",
        b"{}",
        b'{"type": "StreamAssigned"}',
        b'{"type": ["StreamAssigned"]}',
        b'{"type": "Message", "data": {}}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_not_a_message_is_none(raw: bytes) -> None:
    assert _decode_current(raw) is None


def test_a_caller_dict_is_left_to_the_strict_path() -> None:
    wire = orjson.loads(encode(example("StreamAssigned")))
    assert _decode_current(wire) is None
    assert decode(wire) == example("StreamAssigned")
