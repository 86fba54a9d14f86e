"""Signed heartbeats for ``bench/heartbeats.py --signed``: every simulated agent has its own
Ed25519 key (derived from its server id, so the simulator processes and the benchmark agree
without passing keys around), is enrolled before it starts, and signs every heartbeat.

:func:`verification_cost` is the in-process figure: microseconds per heartbeat of the
orchestrator's check (``HeartbeatGate.check``: headers, signature, freshness) next to the
decode every heartbeat costs anyway.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import immutables
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from control_plane.orchestrator.enrollment import HeartbeatGate
from events.codec import decode_heartbeat, encode
from events.enrollment import EnrollInstance, key_id, public_key_text
from events.heartbeat import Heartbeat
from events.topics import Topics
from projections.fold.state import Enrollment
from worker_agent.keys import WorkerKey


def agent_key(server_id: str) -> WorkerKey:
    """The benchmark agent's key (deterministic: a benchmark, not a secret)."""
    private = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(server_id.encode()).digest())
    return WorkerKey(private, key_id(public_key_text(private.public_key())))


async def enroll(producer: AIOKafkaProducer, topics: Topics, server_ids: list[str]) -> None:
    """One ``EnrollInstance`` per agent on the commands topic (the orchestrator records them)."""
    now = datetime.now(UTC)
    for n, sid in enumerate(server_ids):
        public = public_key_text(agent_key(sid).private.public_key())
        c = EnrollInstance(
            id=f"enroll-{n}", source="bench/heartbeats", time=now, command_id=f"enroll-{sid}",
            server_id=sid, public_key=public,
        )  # fmt: skip
        await producer.send(topics.commands, encode(c), key=c.command_id.encode())
    await producer.flush()


class _Record(NamedTuple):
    value: bytes
    headers: Any


def verification_cost(n: int = 3000) -> dict[str, float]:
    """CPU microseconds per heartbeat (process time: a busy machine stretches wall time, not
    this): decoding, the gate's check of a signed one, and signing one."""
    now = datetime.now(UTC)
    records, enrolled = [], {}
    for i in range(n):
        sid = f"cost-{i}"
        key = agent_key(sid)
        hb = Heartbeat(
            id=f"h{i}", source="bench", time=now, server_id=sid, incarnation="i",
            ip="127.0.0.1", port=8000, max_streams=10,
        )  # fmt: skip
        value = encode(hb)
        records.append(_Record(value, key.headers(value)))
        public = public_key_text(key.private.public_key())
        enrolled[sid] = Enrollment(sid, public, key.key_id, now)
    keys = immutables.Map(enrolled)
    gate = HeartbeatGate(open_enrollment=False, max_age=timedelta(seconds=60))
    began = time.process_time()
    decoded = [decode_heartbeat(r.value) for r in records]
    decode_s = time.process_time() - began
    for record in keys.values():  # keys are parsed once each, when first seen: not timed
        gate.public_key(record.public_key)
    began = time.process_time()
    for r, hb in zip(records, decoded, strict=True):
        gate.check(r, hb, keys, now)
    check_s = time.process_time() - began
    began = time.process_time()
    sign_records = [agent_key("cost-0").headers(r.value) for r in records[:1000]]
    sign_s = (time.process_time() - began) / len(sign_records)
    return {
        "decode_us": round(decode_s / n * 1e6, 1),
        "verify_us": round(check_s / n * 1e6, 1),
        "sign_us": round(sign_s * 1e6, 1),
    }
