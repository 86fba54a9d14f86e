"""Dead letters are built purely from a record and its error, keep the exact bytes, and
survive their own JSON round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from events.codec import decode_event
from events.errors import EventError
from projections.io.dlq import (
    MAX_VALUE_BYTES,
    DeadLetter,
    decode_dead_letter,
    encode_dead_letter,
    make_dead_letter,
)

NOW = datetime(2026, 11, 28, 20, 0, tzinfo=UTC)


def _error(raw: bytes) -> EventError:
    with pytest.raises(EventError) as caught:
        decode_event(raw)
    return caught.value


def _letter(value: bytes | None, error: BaseException, **extra: object) -> DeadLetter:
    fields: dict[str, object] = {
        "topic": "streamplane.events",
        "partition": 0,
        "offset": 42,
        "key": None,
        "value": value,
        "error": error,
        "now": NOW,
    }
    fields.update(extra)
    return make_dead_letter(**fields)  # type: ignore[arg-type]


def test_a_non_json_record_keeps_origin_error_and_bytes_as_base64() -> None:
    raw = b"\xff\xfe\x00 definitely not json"
    letter = _letter(raw, _error(raw), key=b"k-1", timestamp_ms=1_700_000_000_000)
    assert (letter.origin_topic, letter.origin_partition, letter.origin_offset) == (
        "streamplane.events",
        0,
        42,
    )
    assert letter.origin_timestamp_ms == 1_700_000_000_000
    assert letter.error_type == "MalformedMessageError"
    assert "JSON" in letter.error_message
    assert letter.value_encoding == "base64"
    assert letter.raw_value() == raw
    assert (letter.key, letter.key_encoding, letter.raw_key()) == ("k-1", "utf-8", b"k-1")
    assert letter.value_size == len(raw) and not letter.value_truncated
    assert letter.dead_lettered_at == NOW


def test_an_unknown_type_names_the_type_and_field_and_keeps_the_text() -> None:
    raw = orjson.dumps(
        {"specversion": "1.0", "id": "e-1", "source": "x", "type": "StreamTeleported",
         "time": "2026-01-01T00:00:00Z", "data": {}}
    )  # fmt: skip
    letter = _letter(raw, _error(raw))
    assert letter.error_type == "UnknownTypeError"
    assert (letter.error_field, letter.message_type) == ("type", "StreamTeleported")
    assert letter.value_encoding == "utf-8"
    assert letter.value == raw.decode()


def test_a_tombstone_and_a_foreign_error_are_recorded_too() -> None:
    letter = _letter(None, ValueError("boom"))
    assert (letter.value, letter.value_encoding, letter.value_size) == (None, None, 0)
    assert letter.raw_value() is None
    assert (letter.error_type, letter.error_message) == ("ValueError", "boom")
    assert letter.error_field is None and letter.message_type is None


def test_huge_values_are_truncated_and_say_so() -> None:
    raw = b"x" * (MAX_VALUE_BYTES + 10)
    letter = _letter(raw, ValueError("too big"))
    assert letter.value_truncated
    assert letter.value_size == len(raw)
    assert letter.raw_value() == raw[:MAX_VALUE_BYTES]


def test_dead_letter_time_is_normalised_to_utc() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    letter = _letter(b"{}", ValueError("x"), now=local)
    assert letter.dead_lettered_at == NOW
    assert letter.dead_lettered_at.utcoffset() == timedelta(0)


@given(value=st.one_of(st.none(), st.binary(max_size=300)), key=st.none() | st.binary(max_size=40))
def test_encode_decode_round_trip_keeps_the_exact_bytes(
    value: bytes | None, key: bytes | None
) -> None:
    letter = _letter(value, ValueError("bad"), key=key)
    back = decode_dead_letter(encode_dead_letter(letter))
    assert back == letter
    assert back.raw_value() == value
    assert back.raw_key() == key
    assert orjson.loads(encode_dead_letter(letter))["origin_offset"] == 42


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"{}",
        orjson.dumps({"origin_topic": "t"}),
        # a well-formed letter whose base64 payload is corrupt
        orjson.dumps(
            {**orjson.loads(encode_dead_letter(_letter(b"\xff", ValueError("x")))), "value": "%%"}
        ),
    ],
)
def test_decode_dead_letter_rejects_what_is_not_one(raw: bytes) -> None:
    with pytest.raises(ValueError, match="not a dead letter"):
        decode_dead_letter(raw)
