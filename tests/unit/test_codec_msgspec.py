"""The msgspec fast path (``events._fast.decoder``) agrees with the strict path, object for object.

``_FAST.decode(raw)`` must give None or an object identical to ``_decode_checked(raw)``
(same type, ``__dict__`` in order, datetimes with the very same tzinfo, nested models,
``model_fields_set``, extra and private slots), and None whenever the strict path raises. The
properties of ``test_codec_fast_path`` run here against the decoder itself (there they run
against the codec's ``_decode_current``), plus the known traps of each check it makes.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any

import msgspec
import orjson
import pytest
from event_examples import example
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pydantic import StringConstraints, TypeAdapter, ValidationError
from test_codec_fast_path import (
    BASES,
    EXAMPLES,
    HISTORY,
    _identical,
    _raw_mutation,
    agree,
    mutated,
)
from test_events_properties import MESSAGES

from events._fast.checks import PATTERN_CHECKS, utc_time
from events.base import Message
from events.codec import _FAST, MESSAGE_TYPES, _decode_checked, _decode_current, encode
from events.errors import EventError

#: the path each type takes: "msgspec" (events._fast.decoder), else "strict" (always the strict one)
EXPECTED_PATHS = dict.fromkeys(MESSAGE_TYPES, "msgspec")


def _agree(raw: bytes | str, *, record: bool = False) -> Message | None:
    """Assert the msgspec path is None or identical to the strict path; None when it raises."""
    return agree(_FAST.decode, "msgspec path", raw, record=record)


def _wire(name: str) -> dict[str, Any]:
    return orjson.loads(encode(example(name)))  # type: ignore[no-any-return]


# --- which path each type takes ---------------------------------------------------------


def test_each_type_takes_its_expected_fast_path() -> None:
    unsupported = _FAST.unsupported()
    paths = {name: "strict" if name in unsupported else "msgspec" for name in MESSAGE_TYPES}
    assert paths == EXPECTED_PATHS, unsupported
    assert set(_FAST.envelope_types()) == {n for n, p in paths.items() if p == "msgspec"}


# --- valid messages: identical objects ----------------------------------------------------


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_example_decodes_identically(message: Message) -> None:
    raw = encode(message)
    assert _agree(raw) is not None
    assert _agree(raw.decode()) is not None  # str input too


def test_a_generated_history_decodes_identically() -> None:
    for logged in HISTORY:
        fast = _agree(encode(logged))
        assert fast == logged


@settings(max_examples=400, deadline=None)
@given(MESSAGES)
def test_generated_messages_decode_identically(message: Message) -> None:
    assert _agree(encode(message)) is not None


@pytest.mark.parametrize(
    ("name", "drop"),
    [
        ("StreamRegistered", ["weight", "priority", "zone", "anti_affinity", "params"]),
        ("RebalancePlanned", ["moves", "lower_bound", "score_before", "reason"]),
        ("Heartbeat", ["zone", "tags", "sent_at", "streams", "metrics", "desired_seq"]),
        ("DesiredSet", ["streams", "params", "fenced"]),
        ("InstanceSuspected", ["last_heartbeat"]),
    ],
)
def test_omitted_fields_are_unset_then_get_the_model_defaults(name: str, drop: list[str]) -> None:
    wire = _wire(name)
    for key in drop:
        del wire["data"][key]
    for key in ("causationid", "correlationid", "datacontenttype", "subject"):
        del wire[key]
    if name != "Heartbeat":  # absent means version 1
        del wire["schemaversion"]
    fast = _agree(orjson.dumps(wire))
    assert fast is not None
    assert fast.model_fields_set.isdisjoint({*drop, "causationid", "correlationid"})
    for key in drop:
        assert fast.__dict__[key] == type(fast).model_fields[key].get_default(
            call_default_factory=True
        )


def test_nested_models_are_built_identically_with_their_fields_set() -> None:
    wire = _wire("RebalancePlanned")
    del wire["data"]["moves"][0]["gain"]
    wire["data"]["moves"][1]["gain"] = 3  # an integer for a float: 3.0 in both
    fast = _agree(orjson.dumps(wire))
    assert fast is not None
    assert fast.moves[0].model_fields_set == {"stream_id", "from_server", "to_server", "reason"}  # type: ignore[attr-defined]
    assert type(fast.moves[1].gain) is float  # type: ignore[attr-defined]


# --- mutated wire forms ------------------------------------------------------------------


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from(BASES), st.integers(1, 3), st.data())
def test_mutated_wire_forms_never_differ(
    message: Message, rounds: int, draw: st.DataObject
) -> None:
    wire = mutated(message, rounds, draw)
    text = json.dumps(wire, separators=(",", ":"), ensure_ascii=draw.draw(st.booleans()))
    _agree(_raw_mutation(text.encode("utf-8", "surrogatepass"), draw), record=True)


def _set(name: str, path: str, value: Any) -> dict[str, Any]:
    wire = _wire(name)
    *parents, last = path.split(".")
    target: Any = wire
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    target[last] = value
    return wire


TRAPS: list[tuple[str, str, Any, bool]] = [
    # (type, path, value, whether the msgspec path must take it)
    ("StreamAssigned", "data.stream_id", "camera-17\n", False),  # Python's re $ would match
    ("StreamAssigned", "data.stream_id", "caméra", False),  # str.isalnum would accept
    ("StreamAssigned", "data.stream_id", "\uff43\uff41\uff4d", False),  # full-width letters
    ("StreamAssigned", "data.stream_id", "٣", False),  # a non-ASCII digit
    ("StreamAssigned", "data.stream_id", "", False),
    ("StreamAssigned", "data.stream_id", "x" * 128, True),
    ("StreamAssigned", "data.stream_id", "x" * 129, False),
    ("StreamAssigned", "data.stream_id", "a b", False),
    ("StreamAssigned", "data.stream_id", 42, False),  # the strict path makes "42"
    ("StreamAssigned", "data.reason", "", False),
    ("StreamAssigned", "data.reason", "Rebalance", False),
    ("StreamAssigned", "data.reason", "_x", False),
    ("StreamAssigned", "data.reason", "9x", False),
    ("StreamAssigned", "data.reason", "ré", False),
    ("StreamAssigned", "data.reason", "a" * 64, True),
    ("StreamAssigned", "data.reason", "a" * 65, False),
    ("StreamAssigned", "data.reason", "x\n", False),
    ("StreamAssigned", "id", "", False),
    ("StreamAssigned", "id", "é" * 128, True),  # lengths count code points
    ("StreamAssigned", "id", "😀" * 128, True),
    ("StreamAssigned", "id", "😀" * 129, False),
    ("StreamAssigned", "source", "", False),
    ("StreamAssigned", "subject", 5, False),  # the strict path ignores subject
    ("StreamAssigned", "subject", None, True),
    ("StreamAssigned", "datacontenttype", None, False),
    ("StreamAssigned", "datacontenttype", "text/plain", False),
    ("StreamAssigned", "specversion", "1.1", False),
    ("StreamAssigned", "schemaversion", 2, False),
    ("StreamAssigned", "schemaversion", 1.0, False),
    ("StreamAssigned", "schemaversion", True, False),
    ("StreamAssigned", "schemaversion", "1", False),
    ("Heartbeat", "schemaversion", 1, False),  # the strict path upcasts v1
    ("StreamAssigned", "seq", 1.0, False),  # the strict path (lax) gives 1
    ("StreamAssigned", "seq", "42", False),
    ("StreamAssigned", "seq", True, False),
    ("StreamAssigned", "seq", 2**63 - 1, True),
    ("StreamAssigned", "seq", 2**63, False),  # beyond msgspec's int64 bounds: left over
    ("StreamAssigned", "seq", 2**64, False),  # orjson reads a float: 18446744073709551616
    ("StreamAssigned", "seq", 10**30, False),
    ("StreamAssigned", "seq", 0, False),
    ("InstanceRegistered", "data.port", True, False),
    ("InstanceRegistered", "data.port", 65536, False),
    ("InstanceRegistered", "data.ip", "10.0.0.256", False),
    ("InstanceRegistered", "data.ip", "::ffff:10.0.0.7", True),
    ("InstanceRegistered", "data.ip", 167772167, False),
    ("InstanceRegistered", "data.zone", "", False),
    ("InstanceRegistered", "data.zone", "😀" * 64, True),
    ("InstanceRegistered", "data.zone", "😀" * 65, False),
    ("InstanceRegistered", "data.tags", ["a"] * 33, False),
    ("PerformanceSampled", "data.metrics.cpu_percent", 2**70, False),  # a float in both
    ("PerformanceSampled", "data.metrics.cpu_percent", 100_000, True),
    ("PerformanceSampled", "data.metrics.error_rate", 1.0000001, False),
    ("PerformanceSampled", "data.metrics.memory_mb", -0.0, True),
    ("PerformanceSampled", "data.metrics.avg_latency_ms", None, True),
    ("PerformanceSampled", "data.metrics.extra", 1, False),
    ("RebalancePlanned", "data.moves.0.gain", 2**64, True),  # same float in both
    ("RebalancePlanned", "data.moves.0.from_server", "w 1", False),
    ("RebalancePlanned", "data.score_before", 1e308, True),
    ("StreamRegistered", "data.params", {str(i): "x" for i in range(65)}, False),
    ("StreamRegistered", "data.params", {"a": 1}, False),
    ("StreamRegistered", "data.seq", 1, False),  # data repeating an envelope key
    ("StreamRegistered", "data.type", "StreamRegistered", False),
    ("StreamRegistered", "data.subject", "x", False),
    ("DesiredSet", "data.params", {"bad key": {}}, False),
    ("DesiredSet", "data.params", {"k": {"a": "b"}, "k2": {}}, True),
    ("Heartbeat", "data.streams.0.state", "RUNNING", False),
    ("Heartbeat", "data.streams.0.stream_id", 17, False),
    ("Heartbeat", "data.desired_mismatch", ["x\n"], False),
    ("StreamFailed", "data.parked", 1, False),
    ("StreamFailed", "data.error", "", True),
    ("StreamFailed", "data.error", "é" * 4096, True),
    ("StreamFailed", "data.error", "é" * 4097, False),
]


@pytest.mark.parametrize(("name", "path", "value", "taken"), TRAPS)
def test_traps(name: str, path: str, value: Any, taken: bool) -> None:
    raw = json.dumps(_set(name, path, value)).encode()
    fast = _agree(raw)
    assert (fast is not None) is taken
    if not taken:  # the message still decodes (or fails) as before, by the strict path
        try:
            strict = _decode_checked(raw)
        except EventError:
            assert _decode_current(raw) is None
        else:
            current = _decode_current(raw)
            assert current is None or _identical(current, strict)


TIMES = [
    ("2026-11-28T20:00:00Z", True),
    ("2026-11-28T20:00:00.5Z", True),
    ("2026-11-28T20:00:00.123456Z", True),
    ("2026-11-28T20:00:00.123456+00:00", True),
    ("2026-11-28T20:00:00.1234565Z", False),  # msgspec would round to ...457, pydantic truncates
    ("2026-11-28T20:00:00.1234564Z", False),
    ("2026-11-28T20:00:00-00:00", True),
    ("2026-11-28T20:00:00.123456-00:00", True),
    ("2026-11-28T20:00:00+00:01", False),
    ("2026-11-28T20:00:00.123+0000", False),  # valid, left to the strict path
    ("2026-11-28T20:00:00.1+00:00:00", False),  # fromisoformat reads it, pydantic does not
    ("2026-11-28T20:00:00.12+00:00:00", False),
    ("2026-11-28T20:00:00.1234+00", False),
    ("2026-11-28T20:00:00+01:00", False),
    ("2026-11-28T20:00:00", False),
    ("2026-11-28t20:00:00z", False),
    ("2026-11-28 20:00:00Z", False),
    ("2026-11-28T20:00Z", False),
    ("2026-11-28T20:00:00.Z", False),
    ("2026-11-28T20:00:00,5Z", False),
    ("2026-11-28T23:59:60Z", False),  # a leap second
    ("2026-11-28T24:00:00Z", False),
    ("2024-02-30T00:00:00Z", False),
    ("0000-01-01T00:00:00Z", False),
    ("2026-W48-6T20:00:00Z", False),
    ("20261128T200000.123456Z", False),
    ("2026-11-28T20:00:00.12345aZ", False),
    ("2026-11-28T20:00:00.12345٣Z", False),
    ("\uff12026-11-28T20:00:00Z", False),  # a full-width digit
]


@pytest.mark.parametrize(("text", "taken"), TIMES)
@pytest.mark.parametrize("path", ["time", "data.until"])
def test_timestamps(text: str, taken: bool, path: str) -> None:
    fast = _agree(json.dumps(_set("InstanceQuarantined", path, text)))
    assert (fast is not None) is taken


RAW_TRAPS = [
    # duplicate keys: orjson (strict path) keeps the last one, and so does msgspec
    (b'"seq":42,', b'"seq":1,"seq":42,', True),
    (b'"seq":42,', b'"seq":42,"seq":7,', True),
    (b'"seq":42,', b'"seq":"x","seq":42,', False),
    (b'"type":"StreamAssigned",', b'"type":"StreamAssigned","type":"StreamStarted",', False),
    (b'"type":"StreamAssigned",', b'"type":"StreamAssigned","type":"StreamAssigned",', True),
    (b'"reason":"new_stream"', b'"reason":"Bad","reason":"new_stream"', True),
    (b'"reason":"new_stream"', b'"reason":"new_stream","reason":"Bad"', False),
    # invalid UTF-8, lone surrogates, odd numbers and tokens
    (b'"source":"', b'"source":"\xff', False),
    (b'"source":"', b'"source":"\xed\xa0\x80', False),
    (b'"source":"', b'"source":"\\ud800', False),
    (b'"source":"', b'"source":"\\udc00', False),
    (b'"source":"', b'"source":"\\ud83d\\ude00', True),
    (b'"seq":42', b'"seq":NaN', False),
    (b'"seq":42', b'"seq":Infinity', False),
    (b'"seq":42', b'"seq":1e400', False),
    (b'"seq":42', b'"seq":42.0', False),
    (b'"seq":42', b'"seq":4.2e1', False),
    (b'"seq":42', b'"seq":042', False),
    (b'"seq":42', b'"seq":-0', False),
    (b'{"', b'\xef\xbb\xbf{"', False),
    (b'{"', b' \n\t{"', True),
]


@pytest.mark.parametrize(("old", "new", "taken"), RAW_TRAPS)
def test_raw_traps(old: bytes, new: bytes, taken: bool) -> None:
    raw = encode(example("StreamAssigned"))
    assert old in raw
    fast = _agree(raw.replace(old, new, 1))
    assert (fast is not None) is taken


def test_str_input_with_a_lone_surrogate_is_none() -> None:
    text = encode(example("StreamAssigned")).decode().replace("orchestrator", "orch\ud800")
    assert _FAST.decode(text) is None
    with pytest.raises(EventError):
        _decode_checked(text)


def test_non_finite_floats_are_refused_after_decoding() -> None:
    """msgspec 0.22 never decodes inf or NaN from JSON; the builder checks anyway."""
    raw = encode(example("PerformanceSampled"))
    for bad in (math.inf, -math.inf, math.nan):
        envelope = msgspec.json.decode(raw, type=_FAST.envelope_types()["PerformanceSampled"])
        envelope.data.metrics.memory_mb = bad
        with pytest.raises(ValueError):
            _FAST.build(envelope)
    with pytest.raises(msgspec.ValidationError):  # the tag is checked
        msgspec.json.decode(raw, type=_FAST.envelope_types()["StreamAssigned"])


def test_a_non_utc_datetime_is_refused_after_decoding() -> None:
    with pytest.raises(ValueError):
        utc_time("2026-11-28T20:00:00+00:01")
    assert utc_time("2026-11-28T20:00:00+00:00").tzinfo is utc_time("2026-11-28T20:00:00Z").tzinfo


# --- the cheap pattern checks equal pydantic's (Rust regex) full match -------------------

PATTERN_TEXT = st.one_of(
    st.text(max_size=140),
    st.text(alphabet="azAZ09._:-_\n é٣ｃ😀\x00", max_size=140),
    st.sampled_from(list(PATTERN_CHECKS)).flatmap(
        lambda p: st.from_regex(p, fullmatch=True).flatmap(
            lambda s: st.sampled_from([s, s + "\n", "\n" + s, s + " ", s.upper(), s[:1] + "é"])
        )
    ),
)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(sorted(PATTERN_CHECKS)), PATTERN_TEXT)
def test_pattern_checks_equal_pydantic(pattern: str, text: str) -> None:
    check = PATTERN_CHECKS[pattern]
    adapter = TypeAdapter(Annotated[str, StringConstraints(pattern=pattern)])
    try:
        adapter.validate_python(text)
        expected = True
    except ValidationError:
        expected = False
    event(f"matches: {expected}")
    assert check.full(text) is expected
    assert expected is bool(re.fullmatch(pattern.strip("^$"), text))  # $ as end of text
    if check.min_length <= len(text) <= check.max_length:
        inline = eval(check.inline.format(v="text"), {**_inline_names(), "text": text})
        assert bool(inline) is expected


def _inline_names() -> dict[str, Any]:
    from events._fast.checks import INLINE_NAMES

    return dict(INLINE_NAMES)
