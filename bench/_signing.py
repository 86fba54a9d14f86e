"""Signed heartbeats for ``bench/heartbeats.py --signed``: every simulated agent has its own
Ed25519 key (derived from its server id, so the simulator processes and the benchmark agree
without passing keys around), is enrolled before it starts, certifies one session per
incarnation and MACs every heartbeat under it (envelope 2, :mod:`events.session`).

:func:`verification_cost` is the in-process figure: microseconds per heartbeat of the
orchestrator's check (``HeartbeatGate.check``) the first time it sees an incarnation's
certificate (parse, Ed25519 verify, MAC, freshness) and in the steady state (MAC and
freshness), next to the decode every heartbeat costs anyway.
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
from worker_agent.keys import Session as Session
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


def _heartbeat(sid: str, n: int, at: datetime) -> Heartbeat:
    return Heartbeat(
        id=f"h{n}-{sid}", source="bench", time=at, server_id=sid, incarnation="i",
        ip="127.0.0.1", port=8000, max_streams=10,
    )  # fmt: skip


def _per_heartbeat_us(seconds: float, n: int) -> float:
    return round(seconds / n * 1e6, 1)


def verification_cost(n: int = 3000) -> dict[str, float]:
    """CPU microseconds per heartbeat (process time: a busy machine stretches wall time, not
    this): decoding; the gate's check of the first heartbeat of each of ``n`` sessions (its
    certificate verified) and of the next one (the certificate known: MAC and freshness);
    and, on the worker, making a session (once per incarnation) and one heartbeat's MAC."""
    now = datetime.now(UTC)
    firsts, nexts, enrolled = [], [], {}
    agent_keys = [agent_key(f"cost-{i}") for i in range(n)]
    for i, key in enumerate(agent_keys):
        sid = f"cost-{i}"
        enrolled[sid] = Enrollment(sid, public_key_text(key.private.public_key()), key.key_id, now)
    began = time.process_time()
    sessions = [key.session(f"cost-{i}", "i") for i, key in enumerate(agent_keys)]
    session_s = time.process_time() - began
    for i, session in enumerate(sessions):
        first = encode(_heartbeat(f"cost-{i}", 0, now))
        firsts.append(_Record(first, session.headers(first)))
        nexts.append(encode(_heartbeat(f"cost-{i}", 1, now + timedelta(milliseconds=1))))
    began = time.process_time()
    nexts = [_Record(v, sessions[i].headers(v)) for i, v in enumerate(nexts)]
    mac_s = time.process_time() - began
    keys = immutables.Map(enrolled)
    gate = HeartbeatGate(open_enrollment=False, max_age=timedelta(seconds=60))
    began = time.process_time()
    decoded = [decode_heartbeat(r.value) for r in firsts]
    decode_s = time.process_time() - began
    decoded_next = [decode_heartbeat(r.value) for r in nexts]
    for record in keys.values():  # keys are parsed once each, when first seen: not timed
        gate.public_key(record.public_key)
    began = time.process_time()
    for r, hb in zip(firsts, decoded, strict=True):
        gate.check(r, hb, keys, now)
    first_s = time.process_time() - began
    began = time.process_time()
    for r, hb in zip(nexts, decoded_next, strict=True):
        gate.check(r, hb, keys, now)
    steady_s = time.process_time() - began
    assert gate.verifications == n, gate.verifications  # every heartbeat counted
    return {
        "decode_us": _per_heartbeat_us(decode_s, n),
        "first_sight_us": _per_heartbeat_us(first_s, n),
        "steady_us": _per_heartbeat_us(steady_s, n),
        "session_us": _per_heartbeat_us(session_s, n),
        "mac_us": _per_heartbeat_us(mac_s, n),
    }
