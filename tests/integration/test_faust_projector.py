"""The Faust projector on real Kafka: its tables (read back from their changelog topics) and
the ``assignments`` topic equal the fold of a generated history; an aborted transaction is
not folded (read_committed); a malformed record goes to the DLQ and the agent goes on; a
restart resumes from a replay; heartbeats fill the ``liveness`` table."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.projector import as_of_seq_problems, assignments_match, instances_match, latest

from events import control as ev
from events import encode
from events.heartbeat import Heartbeat, StreamReport, StreamRunState
from events.topics import ALL_TOPICS, Topics
from projections.fold import fold
from projections.fold.state import ClusterState
from projections.io.dlq import decode_dead_letter
from projections.io.kafka import (
    make_producer,
    publish,
    started,
)
from projections.io.topics import ensure_topics
from projections.projector.app import ProjectorSettings
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

WAIT = 45.0


async def _converges(projector: _Projector, state: ClusterState) -> dict[str, Any]:
    """Poll topic and changelogs until they equal ``state``; returns the assignments."""
    settings = projector.settings
    bootstrap = settings.kafka_bootstrap
    topics = Topics(settings.topic_prefix)
    seen: tuple[bool, ...] = ()
    try:
        async with asyncio.timeout(WAIT):
            while True:
                topic, _ = await latest(bootstrap, topics.assignments)
                table, _ = await latest(bootstrap, settings.changelog_topic("assignments"))
                instances, _ = await latest(bootstrap, settings.changelog_topic("instances"))
                seen = (
                    assignments_match(state, topic),
                    assignments_match(state, table),
                    instances_match(state, instances),
                )
                if all(seen):
                    return topic
                assert projector.running(), projector.output()
                await asyncio.sleep(1.0)
    except TimeoutError:
        raise AssertionError(f"no convergence (topic, table, instances): {seen}") from None


class _Projector:
    """``python -m projections.projector`` in a subprocess (as ``streamplane projector``)."""

    def __init__(self, settings: ProjectorSettings, tmp: Path) -> None:
        self.settings = settings
        self.tmp = tmp
        self.proc: asyncio.subprocess.Process | None = None
        self.log = tmp / "projector.log"

    async def start(self) -> None:
        env = {
            **os.environ,
            "STREAMPLANE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "STREAMPLANE_TOPIC_PREFIX": self.settings.topic_prefix,
            "STREAMPLANE_PROJECTOR_DATA_DIR": str(self.tmp / "faust"),
        }
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "projections.projector", env=env, stdout=out, stderr=out
            )

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _heartbeat(server_id: str, incarnation: str, at: datetime, running: int) -> Heartbeat:
    return Heartbeat(
        id=f"hb-{server_id}-{at.timestamp()}",
        source="test",
        time=at,
        server_id=server_id,
        incarnation=incarnation,
        ip="127.0.0.1",
        port=9000,
        max_streams=10,
        streams=tuple(
            StreamReport(stream_id=f"s{i}", state=StreamRunState.RUNNING) for i in range(running)
        ),
    )


async def test_projector_tables_and_topic_follow_the_fold_across_a_restart(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Any
) -> None:
    history = generate_history(2400, seed=21, instances=6, streams=40)
    head, middle, tail = history[:1000], history[1000:1800], history[1800:]
    settings = ProjectorSettings(kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix)
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, ALL_TOPICS)
    async with started(make_producer(kafka_bootstrap)) as producer:
        await publish(producer, topics.events, [encode(e) for e in head])

    projector = _Projector(settings, tmp_path)
    await projector.start()
    try:
        await _converges(projector, fold(head))

        # live: an aborted transaction whose event would break the next seq, a malformed
        # record, then the rest committed
        txn = make_producer(kafka_bootstrap, transactional_id=f"{topic_prefix}-zombie")
        async with started(txn) as zombie:
            await zombie.begin_transaction()
            victim = sorted(set(fold(head).streams) & set(fold(head + middle).streams))[0]
            bogus = ev.StreamDeregistered(
                id="aborted-event",
                source="zombie",
                time=middle[0].time,
                seq=middle[0].seq,
                epoch=middle[0].epoch,
                stream_id=victim,
            )
            # had it been folded, the end state would differ (the test could not pass)
            assert fold([*head, bogus, *middle]).streams != fold(head + middle).streams
            await zombie.send_and_wait(topics.events, encode(bogus), partition=0)
            await zombie.abort_transaction()
        async with started(make_producer(kafka_bootstrap)) as producer:
            await producer.send_and_wait(topics.events, b"not json", partition=0)
            await publish(producer, topics.events, [encode(e) for e in middle])
            at = datetime(2026, 1, 1, tzinfo=UTC)
            for server in ("w-a", "w-b"):
                hb = _heartbeat(server, f"{server}.1", at, running=3)
                await producer.send_and_wait(topics.heartbeats, encode(hb), key=server.encode())
            old = _heartbeat("w-a", "w-a.1", at.replace(year=2025), running=1)
            await producer.send_and_wait(topics.heartbeats, encode(old), key=b"w-a")
            await producer.send_and_wait(topics.heartbeats, b"{}", key=b"w-c")
        await _converges(projector, fold(head + middle))

        liveness, _ = await latest(kafka_bootstrap, settings.changelog_topic("liveness"))
        assert set(liveness) == {"w-a", "w-b"}
        assert liveness["w-a"]["last_heartbeat"].startswith("2026-01-01")  # the old one lost
        assert liveness["w-a"]["running"] == 3

        _, dlq_records = await latest(kafka_bootstrap, topics.dlq)
        letters = [decode_dead_letter(orjson.dumps(v)) for _, v in dlq_records]
        assert sorted(letter.origin_topic for letter in letters) == [
            topics.events,
            topics.heartbeats,
        ]
        assert {letter.raw_value() for letter in letters} == {b"not json", b"{}"}

        await projector.stop()
        assert projector.proc is not None and projector.proc.returncode == 0, projector.output()
        async with started(make_producer(kafka_bootstrap)) as producer:
            await publish(producer, topics.events, [encode(e) for e in tail])
        await projector.start()
        await _converges(projector, fold(history))
    except (TimeoutError, AssertionError):
        print(projector.output())
        raise
    finally:
        await projector.stop()

    # records of one key only ever advance
    _, records = await latest(kafka_bootstrap, topics.assignments)
    assert not as_of_seq_problems(records), as_of_seq_problems(records)[:10]
    assert max(v["as_of_seq"] for _, v in records if v is not None) <= len(history)
