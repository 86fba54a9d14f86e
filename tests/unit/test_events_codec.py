"""The codec: round trips for every type, and a typed error naming the field for bad input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from event_examples import all_examples, example, example_fields

from events.base import Message
from events.codec import (
    MESSAGE_TYPES,
    decode,
    decode_command,
    decode_desired,
    decode_event,
    decode_heartbeat,
    encode,
    to_wire,
)
from events.errors import (
    EventError,
    MalformedMessageError,
    SchemaValidationError,
    UnknownTypeError,
    UnsupportedVersionError,
    WrongFamilyError,
)

EXAMPLES = all_examples()
Mutation = Callable[[dict[str, Any]], None]


def _wire(type_name: str = "InstanceRegistered") -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(encode(example(type_name)))
    return out


def _decode_mutated(mutate: Mutation, type_name: str = "InstanceRegistered") -> Message:
    wire = _wire(type_name)
    mutate(wire)
    return decode(orjson.dumps(wire))


def test_examples_cover_every_type() -> None:
    assert sorted(type(m).__name__ for m in EXAMPLES) == sorted(MESSAGE_TYPES)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(message: Message) -> None:
    raw = encode(message)
    assert decode(raw) == message
    assert encode(decode(raw)) == raw


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_wire_form_is_cloudevents(message: Message) -> None:
    wire = orjson.loads(encode(message))
    cls = type(message)
    assert wire["specversion"] == "1.0"
    assert wire["type"] == cls.__name__
    assert wire["datacontenttype"] == "application/json"
    assert wire["schemaversion"] == cls.SCHEMA_VERSION
    assert wire["time"].endswith("Z")
    assert wire["subject"] == message.subject
    assert ("seq" in wire) == ("seq" in cls.model_fields)
    assert "type" not in wire["data"]
    assert not {"id", "source", "time", "seq", "epoch"} & set(wire["data"])


@pytest.mark.parametrize(
    ("decoder", "type_name"),
    [
        (decode_event, "StreamAssigned"),
        (decode_command, "DrainInstance"),
        (decode_heartbeat, "Heartbeat"),
        (decode_desired, "DesiredSet"),
    ],
)
def test_family_decoders_accept_their_own(
    decoder: Callable[[bytes], Message], type_name: str
) -> None:
    message = example(type_name)
    assert decoder(encode(message)) == message


@pytest.mark.parametrize(
    ("decoder", "type_name"),
    [
        (decode_event, "DrainInstance"),
        (decode_command, "StreamAssigned"),
        (decode_heartbeat, "DesiredSet"),
        (decode_desired, "Heartbeat"),
    ],
)
def test_wrong_family_is_rejected(decoder: Callable[[bytes], Message], type_name: str) -> None:
    with pytest.raises(WrongFamilyError) as info:
        decoder(encode(example(type_name)))
    assert info.value.field == "type"
    assert info.value.type == type_name


def test_integer_ids_become_strings() -> None:
    message = example("StreamAssigned", stream_id=42, server_id=7, incarnation=1)
    assert (message.stream_id, message.server_id, message.incarnation) == ("42", "7", "1")  # type: ignore[attr-defined]
    decoded = _decode_mutated(lambda w: w["data"].update(stream_id=42), "StreamAssigned")
    assert decoded.stream_id == "42"  # type: ignore[attr-defined]
    assert orjson.loads(encode(decoded))["data"]["stream_id"] == "42"
    assert decoded.subject == "42"


def test_decoding_a_dict_leaves_it_untouched() -> None:
    wire = _wire("Heartbeat")
    snapshot = orjson.dumps(wire)
    decode(wire)
    assert orjson.dumps(wire) == snapshot


# --- invalid data fields: SchemaValidationError naming the field ----------------------------

BAD_DATA = [
    ("server_id", ""),
    ("server_id", "x" * 129),
    ("server_id", "w 1"),
    ("server_id", "w/1"),
    ("server_id", True),
    ("incarnation", "a/b"),
    ("port", 0),
    ("port", 65536),
    ("max_streams", -1),
    ("ip", "300.1.1.1"),
    ("ip", "not-an-ip"),
    ("tags", [""]),
    ("tags", ["t"] * 33),
    ("undeclared", 1),
]


@pytest.mark.parametrize(("name", "value"), BAD_DATA, ids=lambda v: repr(v)[:20])
def test_invalid_field_is_named(name: str, value: Any) -> None:
    with pytest.raises(SchemaValidationError) as info:
        _decode_mutated(lambda w: w["data"].__setitem__(name, value))
    assert info.value.type == "InstanceRegistered"
    assert info.value.field in (f"data.{name}", f"data.{name}.0")


@pytest.mark.parametrize("value", ["", "x" * 129, "camera 17", "camera/17"])
def test_invalid_stream_id_is_rejected_when_built(value: str) -> None:
    with pytest.raises(ValueError, match="stream_id"):
        example("StreamAssigned", stream_id=value)


def test_nested_field_path_is_named() -> None:
    def bad_state(wire: dict[str, Any]) -> None:
        wire["data"]["streams"][1]["state"] = "sleeping"

    with pytest.raises(SchemaValidationError) as info:
        _decode_mutated(bad_state, "Heartbeat")
    assert info.value.field == "data.streams.1.state"


@pytest.mark.parametrize(
    ("name", "value"),
    [("time", "2026-11-28T20:00:00"), ("time", "yesterday"), ("seq", 0), ("epoch", -1), ("id", "")],
)
def test_invalid_envelope_value_is_named(name: str, value: Any) -> None:
    with pytest.raises(SchemaValidationError) as info:
        _decode_mutated(lambda w: w.__setitem__(name, value))
    assert info.value.field == name


def test_naive_datetime_is_rejected_when_built() -> None:
    with pytest.raises(ValueError, match="timezone"):
        example("StreamStarted", time=example("StreamStarted").time.replace(tzinfo=None))


def test_offset_time_is_normalised_to_utc() -> None:
    decoded = _decode_mutated(lambda w: w.update(time="2026-11-28T21:00:00.123456+01:00"))
    assert decoded.time == example("InstanceRegistered").time


# --- malformed envelopes, unknown types and versions ---------------------------------------


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda w: w.update(extra="x"), "extra"),
        (lambda w: w.pop("source"), "source"),
        (lambda w: w.pop("data"), "data"),
        (lambda w: w.update(specversion="0.3"), "specversion"),
        (lambda w: w.update(datacontenttype="text/plain"), "datacontenttype"),
        (lambda w: w.update(data=[1, 2]), "data"),
        (lambda w: w.update(data="{}"), "data"),
        (lambda w: w.update(data=None), "data"),
    ],
    ids=[
        "unknown-attribute",
        "no-source",
        "no-data",
        "specversion",
        "content-type",
        "data-array",
        "data-string",
        "data-null",
    ],
)
def test_malformed_envelope(mutate: Mutation, field: str) -> None:
    with pytest.raises(MalformedMessageError) as info:
        _decode_mutated(mutate)
    assert info.value.field == field


@pytest.mark.parametrize("name", ["seq", "id", "type", "source", "time", "causationid"])
def test_data_repeating_an_envelope_attribute(name: str) -> None:
    with pytest.raises(SchemaValidationError) as info:
        _decode_mutated(lambda w: w["data"].__setitem__(name, "x"))
    assert info.value.field == f"data.{name}"


def test_envelope_extension_on_a_type_without_it() -> None:
    with pytest.raises(SchemaValidationError) as info:
        _decode_mutated(lambda w: w.update(seq=5), "Heartbeat")
    assert info.value.field == "seq"


@pytest.mark.parametrize("type_", ["StreamTeleported", "", 7, None, "Message"])
def test_unknown_type(type_: Any) -> None:
    with pytest.raises(UnknownTypeError) as info:
        _decode_mutated(lambda w: w.update(type=type_))
    assert info.value.field == "type"


@pytest.mark.parametrize("version", [2, 99, 0, -1, "1", True, 1.0, None])
def test_unsupported_schemaversion(version: Any) -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        _decode_mutated(lambda w: w.update(schemaversion=version))
    assert info.value.field == "schemaversion"
    assert info.value.type == "InstanceRegistered"


def test_missing_schemaversion_means_version_1() -> None:
    assert _decode_mutated(lambda w: w.pop("schemaversion")) == example("InstanceRegistered")


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"42", b"null", b'{"specversion": '],
)
def test_not_a_json_object(raw: bytes) -> None:
    with pytest.raises(MalformedMessageError):
        decode(raw)


def test_every_error_is_an_event_error_and_not_retriable() -> None:
    for cls in (
        MalformedMessageError,
        UnknownTypeError,
        UnsupportedVersionError,
        SchemaValidationError,
        WrongFamilyError,
    ):
        assert issubclass(cls, EventError)
        assert cls.retriable is False


def test_to_wire_matches_encode() -> None:
    message = example("RebalancePlanned")
    assert orjson.loads(encode(message)) == to_wire(message)


def test_defaults_fill_omitted_optional_fields() -> None:
    fields = example_fields("StreamRegistered")
    wire = _wire("StreamRegistered")
    for name in ("weight", "priority", "zone", "anti_affinity", "params"):
        del wire["data"][name]
    decoded = decode(orjson.dumps(wire))
    assert decoded.stream_id == fields["stream_id"]  # type: ignore[attr-defined]
    assert (decoded.weight, decoded.priority, decoded.params) == (1, 0, {})  # type: ignore[attr-defined]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_are_rejected(value: float) -> None:
    # JSON cannot carry them: orjson would write null, which no reader could decode.
    with pytest.raises(ValueError, match="finite"):
        example("RebalancePlanned", score_after=value)
    with pytest.raises(ValueError, match="finite"):
        example("PerformanceSampled", metrics={"memory_mb": value})
