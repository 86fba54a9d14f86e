"""Hypothesis properties of the codec over generated valid messages of several types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from events.alerts import AlertFired
from events.base import Message
from events.codec import decode, encode, to_wire
from events.commands import RegisterStream
from events.control import InstanceRegistered, RebalancePlanned, StreamAssigned, StreamFailed
from events.heartbeat import DesiredSet, Heartbeat

INT64 = 2**63 - 1

ids = st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True) | st.integers(0, 10**9)
message_ids = st.text(min_size=1, max_size=40)
reasons = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
texts = st.text(max_size=60)
offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2199, 1, 1), timezones=offsets | st.just(UTC)
)
small_floats = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)
any_floats = st.floats(allow_nan=False, allow_infinity=False)
params = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)
tags = st.lists(st.text(min_size=1, max_size=12), max_size=4)


def envelope(*, logged: bool) -> dict[str, Any]:
    fields = {
        "id": message_ids,
        "source": st.text(min_size=1, max_size=40),
        "time": times,
        "causationid": st.none() | message_ids,
        "correlationid": st.none() | message_ids,
    }
    if logged:
        fields |= {"seq": st.integers(1, INT64), "epoch": st.integers(0, INT64)}
    return fields


def message(cls: type[Message], *, logged: bool = True, **data: Any) -> st.SearchStrategy[Message]:
    return st.fixed_dictionaries({**envelope(logged=logged), **data}).map(cls.model_validate)


stream_reports = st.fixed_dictionaries(
    {"stream_id": ids, "state": st.sampled_from(["starting", "running", "failed"])},
    optional={
        "error": st.none() | texts,
        "performance": st.fixed_dictionaries(
            {},
            optional={
                "latency_ms": st.none() | small_floats,
                "throughput": st.none() | small_floats,
                "restarts": st.integers(0, INT64),
            },
        ),
    },
)
metrics = st.fixed_dictionaries(
    {},
    optional={
        "cpu_percent": st.floats(0, 100_000),
        "memory_mb": small_floats,
        "avg_latency_ms": st.none() | small_floats,
        "error_rate": st.floats(0, 1),
    },
)
moves = st.fixed_dictionaries(
    {"stream_id": ids, "from_server": ids, "to_server": ids},
    optional={"reason": reasons, "gain": any_floats},
)

MESSAGES = st.one_of(
    message(StreamAssigned, stream_id=ids, server_id=ids, incarnation=ids, reason=reasons),
    message(
        StreamFailed,
        stream_id=ids,
        server_id=ids,
        error=st.none() | texts,
        parked=st.booleans(),
        reason=reasons,
    ),
    message(
        InstanceRegistered,
        server_id=ids,
        incarnation=ids,
        ip=st.ip_addresses().map(str),
        port=st.integers(1, 65535),
        max_streams=st.integers(0, 1_000_000),
        zone=st.none() | st.text(min_size=1, max_size=12),
        tags=tags,
    ),
    message(
        RebalancePlanned,
        plan_id=message_ids,
        dry_run=st.booleans(),
        moves=st.lists(moves, max_size=5),
        lower_bound=st.integers(0, INT64),
        score_before=any_floats,
        score_after=any_floats,
    ),
    message(
        RegisterStream,
        logged=False,
        command_id=message_ids,
        stream_id=ids,
        weight=st.integers(1, 10_000),
        priority=st.integers(-1000, 1000),
        params=params,
    ),
    message(
        Heartbeat,
        logged=False,
        server_id=ids,
        incarnation=ids,
        ip=st.ip_addresses(),
        port=st.integers(1, 65535),
        max_streams=st.integers(0, 1_000_000),
        tags=tags,
        sent_at=st.none() | texts,
        streams=st.lists(stream_reports, max_size=5),
        metrics=metrics,
        desired_mismatch=st.lists(ids, max_size=3),
        leaving=st.booleans(),
        desired_seq=st.integers(0, INT64),
    ),
    message(
        DesiredSet,
        logged=True,
        server_id=ids,
        incarnation=ids,
        streams=st.lists(ids, max_size=5),
        params=st.dictionaries(ids.map(str), params, max_size=3),
        fenced=st.booleans(),
    ),
    message(
        AlertFired,
        logged=False,  # an alert carries the seq it is as of, but no epoch
        seq=st.integers(0, INT64),
        key=st.text(min_size=3, max_size=60),
        rule=reasons,
        severity=st.sampled_from(["info", "warning", "critical"]),
        summary=texts,
        evidence=st.dictionaries(st.text(min_size=1, max_size=12), texts, max_size=4),
        action=texts,
        held_back=st.integers(0, INT64),
    ),
)


@settings(max_examples=300, deadline=None)
@given(MESSAGES)
def test_decode_inverts_encode(message: Message) -> None:
    assert decode(encode(message)) == message


@settings(max_examples=200, deadline=None)
@given(MESSAGES)
def test_encode_is_deterministic(message: Message) -> None:
    raw = encode(message)
    assert encode(message.model_copy()) == raw
    assert encode(decode(raw)) == raw
    assert encode(decode(to_wire(message))) == raw


@settings(max_examples=100, deadline=None)
@given(MESSAGES)
def test_wire_data_is_plain_json_without_envelope_fields(message: Message) -> None:
    wire = orjson.loads(encode(message))
    assert set(wire["data"]).isdisjoint({"id", "source", "time", "type", "seq", "epoch"})
    assert wire["time"].endswith("Z")
