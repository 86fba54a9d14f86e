"""The heartbeat simulator of ``bench/heartbeats.py``: many agents heartbeating through one
producer, each heartbeat the wire bytes of a template with a fresh id and time (and, when
signed, the agent's session headers)."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections import deque
from datetime import UTC, datetime
from typing import Any

import _common as c
import _signing
from aiokafka import AIOKafkaProducer

from events.codec import encode
from events.heartbeat import Heartbeat

SLOTS = 20  # sends are spread over this many slots per interval
ID_MARK = b"I" * 32
TIME_MARK = b"2000-01-01T00:00:00.123456Z"


def template(server_id: str, incarnation: str) -> bytes:
    """A heartbeat's wire bytes with marks where a fresh id and time go on each send."""
    hb = Heartbeat(
        id=ID_MARK.decode(),
        source="bench/heartbeats",
        time=datetime(2000, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        server_id=server_id,
        incarnation=incarnation,
        ip="127.0.0.1",
        port=8000,
        max_streams=10,
    )
    raw = encode(hb)
    assert raw.count(ID_MARK) == 1 and raw.count(TIME_MARK) == 1, raw
    return raw


class Simulator:
    """Agents heartbeating at ``interval`` through one producer, in ``SLOTS`` even slots."""

    def __init__(
        self, producer: AIOKafkaProducer, topic: str, interval: float = 1.0, signed: bool = False
    ):
        self.producer, self.topic, self.interval = producer, topic, interval
        self.signed = signed
        self.sessions: dict[str, _signing.Session] = {}
        self.slots: list[dict[str, bytes]] = [{} for _ in range(SLOTS)]
        self.incarnation = os.urandom(8).hex()
        self.last_sent: dict[str, float] = {}
        self.sent = 0
        self.behind_max = 0.0
        self._pending: deque[asyncio.Future[Any]] = deque()

    def add(self, server_id: str, slot: int) -> None:
        self.slots[slot % SLOTS][server_id] = template(server_id, self.incarnation)
        if self.signed:
            self._session(server_id)

    def _session(self, server_id: str) -> _signing.Session:
        """The agent's session (certified once, for the simulator's incarnation)."""
        session = self.sessions.get(server_id)
        if session is None:
            key = _signing.agent_key(server_id)
            session = self.sessions[server_id] = key.session(server_id, self.incarnation)
        return session

    def remove(self, server_id: str) -> float:
        """Silence an agent; returns the wall time of its last heartbeat."""
        for slot in self.slots:
            slot.pop(server_id, None)
        return self.last_sent.get(server_id, math.nan)

    async def send_one(self, server_id: str, raw: bytes, stamp: bytes) -> None:
        value = raw.replace(ID_MARK, os.urandom(16).hex().encode(), 1).replace(TIME_MARK, stamp, 1)
        headers = self._session(server_id).headers(value) if self.signed else None
        self._pending.append(
            await self.producer.send(self.topic, value, key=server_id.encode(), headers=headers)
        )
        self.last_sent[server_id] = time.time()
        self.sent += 1

    async def run(self, stop: asyncio.Event) -> None:
        tick = self.interval / SLOTS
        began, k = time.monotonic(), 0
        while not stop.is_set():
            due = began + k * tick
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            self.behind_max = max(self.behind_max, -delay)
            stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode()
            for server_id, raw in list(self.slots[k % SLOTS].items()):
                await self.send_one(server_id, raw, stamp)
            await self._settle()
            k += 1

    async def _settle(self) -> None:
        # acknowledgements are collected one tick late so that sending never waits on them
        keep = len(self._pending) // 2
        async with asyncio.timeout(c.NET):
            while len(self._pending) > keep:
                await self._pending.popleft()


__all__ = ["SLOTS", "Simulator", "template"]
