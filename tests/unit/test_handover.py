"""The hand-over of checked events between a replay's two processes (``events._fast.handover``).

``unpack_events(pack_events(raws))`` must give, object for object, what the decode gives
(same type, ``__dict__`` in order, datetimes with the same tzinfo, nested models,
``model_fields_set``), and ``pack_events`` must refuse (None) every chunk holding a record
the msgspec path refuses, so that such chunks go over raw and get the precise errors and
dead letters of the strict path.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Literal

import orjson
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, IPvAnyAddress
from test_codec_fast_path import BASES, EXAMPLES, HISTORY, _identical, mutated
from test_events_properties import MESSAGES

from events._fast.decoder import FastDecoder
from events._fast.handover import Handover
from events.base import ControlEvent, Message, UtcDateTime
from events.codec import (
    _FAST,
    CONTENT_TYPE,
    SPECVERSION,
    _decode_checked,
    decode_event,
    encode,
    pack_events,
    unpack_events,
)
from events.control import CONTROL_EVENT_TYPES

NOW = datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=UTC)


def _round_trip(raw: bytes) -> ControlEvent | None:
    """Assert the hand-over agrees with the msgspec path on one record; its event or None."""
    blob = pack_events([raw])
    fast = _FAST.decode(raw)
    if not isinstance(fast, ControlEvent):  # refused, or not a control event
        assert blob is None, f"packed what the decode refuses: {raw!r}"
        return None
    assert blob is not None, f"refused what the decode takes: {raw!r}"
    (unpacked,) = unpack_events(blob)
    assert _identical(unpacked, fast), f"differs from the decode: {raw!r}"
    return unpacked


@pytest.mark.parametrize(
    "message",
    [m for m in EXAMPLES if isinstance(m, ControlEvent)],
    ids=lambda m: type(m).__name__,
)
def test_every_control_event_example_round_trips_identically(message: ControlEvent) -> None:
    raw = encode(message)
    unpacked = _round_trip(raw)
    assert unpacked == message
    assert _identical(unpacked, _decode_checked(raw))  # each type's unpacker: the strict object


def test_every_control_event_type_can_be_handed_over() -> None:
    # else that type always goes over raw (correct, but the reader then saves nothing)
    assert set(_FAST.plans()) >= set(CONTROL_EVENT_TYPES)


def test_a_generated_history_round_trips_in_chunks() -> None:
    raws = [encode(e) for e in HISTORY]
    unpacked: list[Message] = []
    for i in range(0, len(raws), 256):
        blob = pack_events(raws[i : i + 256])
        assert blob is not None
        unpacked += unpack_events(blob)
    assert unpacked == HISTORY
    decoded = [decode_event(raw) for raw in raws]
    assert all(_identical(a, b) for a, b in zip(unpacked, decoded, strict=True))


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_generated_messages_round_trip_or_are_refused_with_the_decode(message: Message) -> None:
    taken = _round_trip(encode(message))
    assert (taken is not None) == isinstance(message, ControlEvent)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(BASES), st.integers(1, 3), st.data())
def test_mutated_records_are_refused_exactly_when_the_decode_refuses_them(
    message: Message, rounds: int, draw: st.DataObject
) -> None:
    wire = mutated(message, rounds, draw)
    raw = json.dumps(wire, separators=(",", ":")).encode()
    event("handed over" if _round_trip(raw) is not None else "refused")


@pytest.mark.parametrize("at", [0, 7, 255])
def test_one_record_the_decode_refuses_refuses_the_whole_chunk(at: int) -> None:
    raws = [encode(e) for e in HISTORY[:256]]
    good = pack_events(raws)
    assert good is not None and len(unpack_events(good)) == 256
    for bad in (b'{"not": "an event"}', b"\xff", raws[at].replace(b'"seq":', b'"seq":"')):
        assert pack_events([*raws[:at], bad, *raws[at + 1 :]]) is None
    heartbeat = next(m for m in EXAMPLES if type(m).__name__ == "Heartbeat")
    assert pack_events([*raws[:at], encode(heartbeat), *raws[at + 1 :]]) is None  # not ours


def test_absent_optional_fields_keep_their_fields_set() -> None:
    message = next(m for m in EXAMPLES if type(m).__name__ == "RebalancePlanned")
    wire = orjson.loads(encode(message))
    for key in ("causationid", "correlationid"):
        del wire[key]
    for key in ("lower_bound", "reason"):
        del wire["data"][key]
    del wire["data"]["moves"][0]["gain"]  # a nested model's absent field too
    unpacked = _round_trip(orjson.dumps(wire))
    assert unpacked is not None
    assert unpacked.model_fields_set.isdisjoint(
        {"causationid", "correlationid", "lower_bound", "reason"}
    )
    assert "gain" not in unpacked.moves[0].model_fields_set  # type: ignore[attr-defined]
    assert "gain" in unpacked.moves[1].model_fields_set  # type: ignore[attr-defined]


# --- every kind of value, on a model made for it -------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    colour: Colour = Colour.RED
    at: UtcDateTime | None = None
    ip: IPvAnyAddress | None = None


class Probe(ControlEvent):
    """Not a real event: a type holding each kind of value the hand-over converts back."""

    type: Literal["Probe"] = "Probe"
    colour: Colour
    colours: tuple[Colour, ...] = ()
    by_colour: dict[Colour, int] = {}  # pydantic copies defaults
    part: Part
    parts: tuple[Part, ...] = ()
    named: dict[str, Part | None] = {}
    maybe: Part | None = None
    ip: IPvAnyAddress
    deadline: UtcDateTime | None = None
    ratio: float = 0.5
    flag: bool = False
    tags: tuple[str, ...] = ()


PROBE_FAST = FastDecoder([Probe], specversion=SPECVERSION, content_type=CONTENT_TYPE)
PROBE = Handover(PROBE_FAST, [Probe])


def _probe(**changes: object) -> Probe:
    values: dict[str, object] = {
        "id": "e1",
        "source": "test",
        "time": NOW,
        "seq": 1,
        "epoch": 1,
        "colour": Colour.BLUE,
        "colours": (Colour.RED, Colour.BLUE),
        "by_colour": {Colour.RED: 1},
        "part": Part(name="a", colour=Colour.BLUE, at=NOW, ip=IPv6Address("::1")),
        "parts": (Part(name="b"), Part(name="c", ip=IPv4Address("10.0.0.7"))),
        "named": {"x": Part(name="x"), "none": None},
        "maybe": None,
        "ip": IPv4Address("192.168.1.2"),
        "deadline": NOW,
        "ratio": 2.0,
        "flag": True,
        "tags": ("t1", "t2"),
    }
    values.update(changes)
    return Probe(**values)  # type: ignore[arg-type]


def test_the_probe_type_takes_the_msgspec_path() -> None:
    assert PROBE_FAST.unsupported() == {}


@pytest.mark.parametrize(
    "probe",
    [
        _probe(),
        _probe(maybe=Part(name="m", colour=Colour.BLUE), ip=IPv6Address("2001:db8::1")),
        _probe(colours=(), parts=(), named={}, by_colour={}, deadline=None, tags=()),
    ],
)
def test_each_kind_of_value_comes_back_identical(probe: Probe) -> None:
    raw = encode(probe)
    fast = PROBE_FAST.decode(raw)
    assert fast is not None
    blob = PROBE.pack([raw])
    assert blob is not None
    (unpacked,) = PROBE.unpack(blob)
    assert _identical(unpacked, fast) and unpacked == probe
    assert isinstance(unpacked.colours, tuple) and isinstance(unpacked.parts, tuple)  # type: ignore[attr-defined]
    assert type(unpacked.colour) is Colour and type(unpacked.ip) is type(probe.ip)  # type: ignore[attr-defined]


def test_a_bad_nested_value_refuses_the_probe() -> None:
    wire = orjson.loads(encode(_probe()))
    wire["data"]["parts"][1]["ip"] = "10.0.0.300"
    assert PROBE_FAST.decode(orjson.dumps(wire)) is None
    assert PROBE.pack([orjson.dumps(wire)]) is None
