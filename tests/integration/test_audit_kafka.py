"""``streamplane audit`` on real Kafka over a generated history: the state at a time, a seq
or an offset; a stream's chain; and verify, which must flag gaps and a lying snapshot."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from control_plane.cli.audit import audit_app
from events import ControlEvent
from events.codec import encode
from events.topics import EVENTS, SNAPSHOTS, Topics
from projections.fold import fold
from projections.fold.audit import stream_history, summarize
from projections.fold.canonical import state_digest
from projections.fold.snapshots import make_snapshot
from projections.io.kafka import make_producer, publish, started
from projections.io.snapshot_store import SnapshotStore
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

N = 3000
HISTORY = generate_history(N, seed=12)
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _publish(bootstrap: str, prefix: str, events: list[ControlEvent]) -> Topics:
    async def go() -> Topics:
        topics = Topics(prefix)
        await ensure_topics(bootstrap, topics, (EVENTS, SNAPSHOTS))
        async with started(make_producer(bootstrap)) as producer:
            await publish(producer, topics.events, [encode(e) for e in events])
        return topics

    return asyncio.run(go())


def _snapshot(bootstrap: str, topics: Topics, covered: int, log_offset: int) -> None:
    async def go() -> None:
        snap = make_snapshot(fold(HISTORY[:covered]), log_offset=log_offset, taken_at=T0)
        async with SnapshotStore(bootstrap, topics) as store:
            await store.write(snap)

    asyncio.run(go())


def _audit(bootstrap: str, prefix: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        audit_app, [*args, "--bootstrap", bootstrap, "--topic-prefix", prefix]
    )
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout


def _state_json(bootstrap: str, prefix: str, *args: str) -> dict:  # type: ignore[type-arg]
    code, out = _audit(bootstrap, prefix, "state", "--json", *args)
    assert code == 0, out
    return json.loads(out)  # type: ignore[no-any-return]


def _expected(k: int) -> dict:  # type: ignore[type-arg]
    state = fold(HISTORY[:k])
    return {
        "summary": summarize(state),
        "streams": sorted(state.streams),
        "owners": {sid: s.server_id for sid, s in state.streams.items()},
    }


def _check(doc: dict, k: int) -> None:  # type: ignore[type-arg]
    want = _expected(k)
    assert doc["summary"] == want["summary"]
    assert [s["stream_id"] for s in doc["streams"]] == want["streams"]
    assert {s["stream_id"]: s["server_id"] for s in doc["streams"]} == want["owners"]


def test_audit_state_at_a_time_a_seq_and_an_offset(kafka_bootstrap: str, topic_prefix: str) -> None:
    _publish(kafka_bootstrap, topic_prefix, HISTORY)
    at = HISTORY[1999].time.isoformat()
    _check(_state_json(kafka_bootstrap, topic_prefix, "--at", at), 2000)
    _check(_state_json(kafka_bootstrap, topic_prefix, "--seq", "1234"), 1234)
    _check(_state_json(kafka_bootstrap, topic_prefix, "--offset", "777"), 777)
    _check(_state_json(kafka_bootstrap, topic_prefix), N)

    code, out = _audit(kafka_bootstrap, topic_prefix, "state", "--at", at)
    assert code == 0
    assert out.startswith("state as of seq 2000 ")
    state = fold(HISTORY[:2000])
    for sid, s in state.streams.items():
        assert f"  stream {sid} {s.status.value} on {s.server_id}" in out


def test_audit_state_uses_a_snapshot_only_when_it_lies_before_the_moment(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = _publish(kafka_bootstrap, topic_prefix, HISTORY)
    _snapshot(kafka_bootstrap, topics, covered=2500, log_offset=2500)
    _check(_state_json(kafka_bootstrap, topic_prefix, "--at", HISTORY[2799].time.isoformat()), 2800)
    _check(_state_json(kafka_bootstrap, topic_prefix, "--at", HISTORY[999].time.isoformat()), 1000)
    _check(_state_json(kafka_bootstrap, topic_prefix, "--seq", "2600"), 2600)
    _check(_state_json(kafka_bootstrap, topic_prefix, "--seq", "100"), 100)


def test_audit_stream_shows_the_chain(kafka_bootstrap: str, topic_prefix: str) -> None:
    _publish(kafka_bootstrap, topic_prefix, HISTORY)
    counts = Counter(getattr(e, "stream_id", None) for e in HISTORY)
    stream_id = next(s for s, _ in counts.most_common() if s is not None)
    want = stream_history(HISTORY, stream_id)
    assert len(want) > 5

    code, out = _audit(kafka_bootstrap, topic_prefix, "stream", stream_id, "--json")
    assert code == 0
    got = json.loads(out)
    assert [(s["seq"], s["type"], s["reason"]) for s in got] == [
        (s.seq, s.type, s.reason) for s in want
    ]
    assert [(s["server_before"], s["server_after"]) for s in got] == [
        (s.server_before, s.server_after) for s in want
    ]

    code, out = _audit(kafka_bootstrap, topic_prefix, "stream", stream_id)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == len(want)
    assert all(line.startswith(f"seq {s.seq} ") for line, s in zip(lines, want, strict=True))

    code, out = _audit(kafka_bootstrap, topic_prefix, "stream", "no-such-stream")
    assert code == 1 and "no event concerns stream no-such-stream" in out


def test_audit_verify_passes_a_clean_log_and_its_snapshot(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = _publish(kafka_bootstrap, topic_prefix, HISTORY)
    _snapshot(kafka_bootstrap, topics, covered=2000, log_offset=2000)
    code, out = _audit(kafka_bootstrap, topic_prefix, "verify", "--json")
    assert code == 0, out
    report = json.loads(out)
    assert report["ok"] and report["seq"] == N and report["events"] == N
    assert report["digest"] == state_digest(fold(HISTORY))
    assert report["snapshot"]["match"] and report["snapshot"]["seq"] == 2000
    code, out = _audit(kafka_bootstrap, topic_prefix, "verify")
    assert code == 0 and out.rstrip().endswith("OK")


def test_audit_verify_flags_a_seq_gap(kafka_bootstrap: str, topic_prefix: str) -> None:
    _publish(kafka_bootstrap, topic_prefix, HISTORY[:500] + HISTORY[501:1000])
    code, out = _audit(kafka_bootstrap, topic_prefix, "verify", "--json")
    assert code == 1
    report = json.loads(out)
    assert not report["ok"]
    assert report["seq_gaps"] == ["expected seq 501, got 502"]
    assert report["findings_by_kind"]["seq_gap"] == 1


def test_audit_verify_flags_a_snapshot_that_disagrees_with_the_log(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = _publish(kafka_bootstrap, topic_prefix, HISTORY)
    # a valid snapshot (its digest fits its state) that claims the wrong place in the log
    _snapshot(kafka_bootstrap, topics, covered=2000, log_offset=1900)
    code, out = _audit(kafka_bootstrap, topic_prefix, "verify")
    assert code == 1
    assert "DIFFERS from the log" in out and out.rstrip().endswith("FINDINGS")
