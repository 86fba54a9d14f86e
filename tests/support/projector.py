"""Faust projector processes in tests, and reading back what they wrote.

``ProjectorProc`` runs ``python -m projections.projector`` (what ``streamplane projector``
runs) with its own data directory and ``/metrics`` port; :func:`latest` reads a keyed topic
(the assignments topic, a table's changelog) back; :func:`outputs_match` compares the topic
and the tables' changelogs with a fold of the log.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import orjson
from aiokafka import TopicPartition

from events import encode
from events.base import ControlEvent
from events.topics import Topics
from projections.errors import UnknownTopicError
from projections.fold.assignments import (
    assignment_value,
    instance_value,
    same_assignment,
    same_instance,
)
from projections.fold.state import ClusterState
from projections.io.kafka import end_offsets, make_consumer, make_producer, publish, started
from projections.projector.app import ProjectorSettings
from support.scrape import Scrape, scrape


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def latest(bootstrap: str, topic: str) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Latest value per key of ``topic`` (tombstones drop the key), and every record."""
    values: dict[str, Any] = {}
    records: list[tuple[str, Any]] = []
    try:
        ends = {
            TopicPartition(topic, p): e for p, e in (await end_offsets(bootstrap, topic)).items()
        }
    except UnknownTopicError:
        return values, records
    tps = sorted(ends)
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    async with started(consumer):
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            for tp_records in batch.values():
                for r in tp_records:
                    key = orjson.loads(r.key) if r.key and r.key[:1] == b'"' else r.key.decode()
                    value = None if r.value is None else orjson.loads(r.value)
                    records.append((key, value))
                    if value is None:
                        values.pop(key, None)
                    else:
                        values[key] = value
    return values, records


def assignments_match(state: ClusterState, seen: dict[str, Any]) -> bool:
    if set(seen) != set(state.streams):
        return False
    return all(
        same_assignment(seen[sid], assignment_value(s, seq=0, epoch=0, time=None, reason=""))
        for sid, s in state.streams.items()
    )


def instances_match(state: ClusterState, seen: dict[str, Any]) -> bool:
    if set(seen) != set(state.instances):
        return False
    return all(same_instance(seen[k], instance_value(i, seq=0)) for k, i in state.instances.items())


async def outputs_match(settings: ProjectorSettings, state: ClusterState) -> tuple[bool, ...]:
    """(topic, assignments table, instances table) each equal to ``state``."""
    bootstrap = settings.kafka_bootstrap
    topic, _ = await latest(bootstrap, Topics(settings.topic_prefix).assignments)
    table, _ = await latest(bootstrap, settings.changelog_topic("assignments"))
    instances, _ = await latest(bootstrap, settings.changelog_topic("instances"))
    return (
        assignments_match(state, topic),
        assignments_match(state, table),
        instances_match(state, instances),
    )


def as_of_seq_problems(records: list[tuple[str, Any]]) -> list[str]:
    """Records whose ``as_of_seq`` is below an earlier record's of the same key."""
    last: dict[str, int] = {}
    problems = []
    for key, value in records:
        if value is None:
            continue
        if value["as_of_seq"] < last.get(key, 0):
            problems.append(f"{key}: {value['as_of_seq']} after {last[key]}")
        last[key] = max(last.get(key, 0), value["as_of_seq"])
    return problems


async def append(bootstrap: str, topic: str, events: list[ControlEvent], txn_id: str) -> None:
    """Append ``events`` in one transaction, as the orchestrator writes the log."""
    async with started(make_producer(bootstrap, transactional_id=txn_id)) as producer:
        await producer.begin_transaction()
        await publish(producer, topic, [encode(e) for e in events])
        await producer.commit_transaction()


class ProjectorProc:
    """One projector process with its own data directory and metrics port."""

    def __init__(self, name: str, settings: ProjectorSettings, tmp: Path, **env: str) -> None:
        self.name = name
        self.settings = settings
        self.port = free_port()
        self.data_dir = tmp / name
        self.log = tmp / f"{name}.log"
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("STREAMPLANE_")},
            "STREAMPLANE_KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
            "STREAMPLANE_TOPIC_PREFIX": self.settings.topic_prefix,
            "STREAMPLANE_PROJECTOR_DATA_DIR": str(self.data_dir),
            "STREAMPLANE_PROJECTOR_SESSION_TIMEOUT": "6",
            "STREAMPLANE_METRICS_ADDRESS": f"127.0.0.1:{self.port}",
            **self.env,
        }
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "projections.projector", env=env, stdout=out, stderr=out
            )

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; the exit code."""
        if self.proc is None or self.proc.returncode is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                return await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            return await self.proc.wait()

    async def kill(self) -> None:
        """kill -9: no shutdown, no commit, no flush."""
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def metrics(self) -> Scrape | None:
        """A scrape of its ``/metrics`` (None while nothing answers)."""
        try:
            return await scrape(self.port)
        except OSError:
            return None

    def text(self) -> str:
        """Everything it logged so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def output(self) -> str:
        """The tail of its log, to show when a test fails."""
        return f"--- {self.name} ---\n{self.text()[-4000:]}"
