"""The ``principal`` extension attribute: written only when set (older records keep their
bytes), decoded the same by the fast and the strict path, refused where it does not belong."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from event_examples import example_fields

from events import commands as cmd
from events import control as ev
from events.codec import _decode_checked, decode, encode
from events.errors import EventError
from events.heartbeat import Heartbeat

T = datetime(2026, 12, 3, tzinfo=UTC)


def test_absent_when_unset_and_round_trips_when_set() -> None:
    plain = ev.StreamDeregistered(
        id="e1", source="o", time=T, seq=3, epoch=1, stream_id="s", reason="operator"
    )
    assert "principal" not in orjson.loads(encode(plain))
    who = plain.model_copy(update={"principal": "ops-alice"})
    wire = orjson.loads(encode(who))
    assert wire["principal"] == "ops-alice" and "principal" not in wire["data"]
    for message in (plain, who):
        raw = encode(message)
        assert decode(raw) == _decode_checked(raw) == message
        assert decode(raw).model_fields_set == _decode_checked(raw).model_fields_set
    command = cmd.DrainInstance(
        id="c1", source="cli", time=T, command_id="c1", server_id="w1", principal="bob"
    )
    assert decode(encode(command)) == command


def test_only_commands_and_control_events_carry_it() -> None:
    hb = orjson.loads(encode(Heartbeat(**example_fields("Heartbeat"))))
    with pytest.raises(EventError, match="principal"):
        decode(orjson.dumps({**hb, "principal": "someone"}))
