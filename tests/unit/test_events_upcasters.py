"""Upcasters: old schema versions stay readable, one step at a time."""

from __future__ import annotations

import orjson
import pytest
from event_examples import example

from events.codec import MESSAGE_TYPES, decode, encode
from events.errors import UnsupportedVersionError
from events.heartbeat import Heartbeat, StreamReport, StreamRunState
from events.upcasters import UPCASTERS, upcast, upcast_heartbeat_v1_v2


def _heartbeat_v1(streams: list[object]) -> bytes:
    wire = orjson.loads(orjson.dumps(example("Heartbeat").model_dump(mode="json")))
    data = {k: v for k, v in wire.items() if k not in {"id", "source", "time", "type"}}
    data.pop("causationid")
    data.pop("correlationid")
    data["streams"] = streams
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": "hb-1",
            "source": "streamplane/worker/w-1",
            "type": "Heartbeat",
            "time": "2026-11-28T20:00:00Z",
            "schemaversion": 1,
            "data": data,
        }
    )


def test_heartbeat_v1_decodes_into_v2_reports() -> None:
    message = decode(_heartbeat_v1(["camera-17", 42]))
    assert isinstance(message, Heartbeat)
    assert message.streams == (
        StreamReport(stream_id="camera-17", state=StreamRunState.RUNNING),
        StreamReport(stream_id="42", state=StreamRunState.RUNNING),
    )
    # re-encoded, it is a current-version message
    assert orjson.loads(encode(message))["schemaversion"] == Heartbeat.SCHEMA_VERSION


def test_heartbeat_v1_without_streams_decodes() -> None:
    message = decode(_heartbeat_v1([]))
    assert isinstance(message, Heartbeat)
    assert message.streams == ()


def test_upcaster_is_pure_and_one_step() -> None:
    data = {"server_id": "w-1", "streams": ["a", {"stream_id": "b", "state": "failed"}]}
    out = upcast_heartbeat_v1_v2(data)
    assert data["streams"] == ["a", {"stream_id": "b", "state": "failed"}]  # input untouched
    assert out["streams"] == [
        {"stream_id": "a", "state": "running"},
        {"stream_id": "b", "state": "failed"},
    ]


def test_upcast_to_current_is_identity() -> None:
    data = {"x": 1}
    assert upcast("Heartbeat", 2, 2, data) == data


def test_upcast_chain_raises_lookup_error_on_a_missing_step() -> None:
    assert ("Heartbeat", 2) not in UPCASTERS
    with pytest.raises(LookupError, match="Heartbeat v2 -> v3"):
        upcast("Heartbeat", 1, 3, {"streams": []})


def test_decode_maps_a_missing_step_to_unsupported_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(UPCASTERS, ("Heartbeat", 1))
    with pytest.raises(UnsupportedVersionError) as info:
        decode(_heartbeat_v1(["camera-17"]))
    assert info.value.field == "schemaversion"
    assert info.value.type == "Heartbeat"


def test_every_upcaster_steps_below_its_types_current_version() -> None:
    for type_, version in UPCASTERS:
        assert type_ in MESSAGE_TYPES
        assert 1 <= version < MESSAGE_TYPES[type_].SCHEMA_VERSION
