"""Free text that PostgreSQL cannot hold, on a real broker and a real PostgreSQL: a worker's
error message, an instance's zone and an event id may contain NUL (the contract allows it);
PostgreSQL refuses it in ``text`` and ``jsonb``, and one such event used to stop the read
model for good (every retry of the batch failed alike). The read model now writes U+FFFD in
its place, goes on with the rest of the log, and the drift check finds it equal to the log
(projections/fold/text.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from control_plane.drift_io import check_read_model
from events import control as ev
from events import encode
from events.base import ControlEvent
from events.codec import decode_event
from events.topics import EVENTS, Topics
from projections.fold import fold
from projections.io.kafka import make_producer, publish, started
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 3, tzinfo=UTC)


def _event(cls: type[ControlEvent], seq: int, **fields: Any) -> ControlEvent:
    fields.setdefault("id", f"e{seq}")
    return cls(source="test", time=T0 + timedelta(seconds=seq), seq=seq, epoch=1, **fields)


def _log() -> list[ControlEvent]:
    assigned = {"server_id": "w1", "incarnation": "w1.a"}
    return [
        _event(ev.LeaderElected, 1, leader_id="o1"),
        _event(
            ev.InstanceRegistered,
            2,
            server_id="w1",
            incarnation="w1.a",
            ip="127.0.0.1",
            port=9000,
            max_streams=4,
            zone="zone\x00a",
        ),
        _event(ev.StreamRegistered, 3, stream_id="s1"),
        _event(ev.StreamAssigned, 4, stream_id="s1", reason="new_stream", **assigned),
        _event(ev.StreamStarted, 5, stream_id="s1", **assigned),
        _event(
            ev.StreamFailed,
            6,
            id="e\x006",
            stream_id="s1",
            server_id="w1",
            error="camera said \x00 and stopped",
            causationid="cmd\x00x",
        ),
        _event(ev.StreamRegistered, 7, stream_id="s2"),
    ]


async def test_nul_in_free_text_neither_stops_the_read_model_nor_reads_as_drift(
    kafka_bootstrap: str, topic_prefix: str, database_url: str, pg_schema: str
) -> None:
    log = _log()
    assert [decode_event(encode(e)) for e in log] == log  # the contract takes it
    state = fold(log)
    assert state.finding_count == 0 and state.streams["s1"].last_error is not None
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS,))
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, [encode(e) for e in log])

    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
        read_model_dead_letters=False,
    )
    async with ReadModelProjector(database_url, schema=pg_schema, settings=settings) as p:
        assert await p.catch_up() == len(log)
        assert p.state == state

    conn = await asyncpg.connect(database_url, server_settings={"search_path": pg_schema})
    try:
        stream = await conn.fetchrow("SELECT data::text AS data, status FROM streams "
                                     "WHERE stream_id = 's1'")  # fmt: skip
        zone = await conn.fetchval("SELECT zone FROM instances WHERE server_id = 'w1'")
        failed = await conn.fetchrow("SELECT id, causationid, data::text AS data FROM events "
                                     "WHERE seq = 6")  # fmt: skip
        seqs = [r["seq"] for r in await conn.fetch("SELECT seq FROM events ORDER BY seq")]
    finally:
        await conn.close()
    assert "camera said \ufffd and stopped" in stream["data"]
    assert stream["status"] == state.streams["s1"].status.value
    assert zone == "zone\ufffda"
    assert (failed["id"], failed["causationid"]) == ("e\ufffd6", "cmd\ufffdx")
    assert "camera said \ufffd and stopped" in failed["data"]
    assert seqs == list(range(1, len(log) + 1))  # and the events after it too

    report = await check_read_model(settings)
    assert report.drifts == (), report.drifts
    assert (report.as_of_seq, report.checked) == (len(log), report.checked)
