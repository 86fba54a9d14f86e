"""Enrolled workers (issue 11, section 2) with real Kafka and real processes, enrollment closed:
enrolled workers that sign their heartbeats get streams; an unenrolled worker never
registers; a forged heartbeat (another worker's id certified with the forger's own key, w1's
real certificate with a MAC its sender could not make, w1's certificate for w2's id) moves
nothing and is dead-lettered with its reason; a revoked worker is failed, its streams run
elsewhere, and its next incarnation never registers; the monitor raises one alert per
claimed id; and ``streamplane simulate`` replays the whole run exactly (the leader's cycle
marks say which heartbeats its gate refused). One cluster for all of it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from support.alerts import start_monitor, watching_alerts
from support.cli_walk import run
from support.cluster import Cluster, Proc, open_cluster

from events import commands as cmd
from events.codec import decode_heartbeat, encode
from events.control import InstanceFailed, InstanceRegistered, InstanceRevoked, StreamAssigned
from events.heartbeat import Heartbeat
from events.session import MAC_HEADER, SESSION_HEADER
from events.topics import HEARTBEATS
from projections.fold.state import InstanceStatus
from projections.io.dlq import DeadLetter, decode_dead_letter
from projections.io.kafka import end_offsets, make_consumer, make_producer, started
from worker_agent import keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = [f"s{i}" for i in range(6)]
#: the refusals this test provokes, by server id and reason
EXPECTED_REFUSALS = {
    ("w3", "unenrolled"),
    ("w1", "wrong_key"),
    ("w1", "bad_signature"),
    ("w1", "bad_mac"),
    ("w2", "session_mismatch"),
}


def _forged(server_id: str, incarnation: str | None = None) -> bytes:
    """A valid heartbeat of ``server_id``: of a new incarnation (were it believed, it would
    supersede, fail, the live one and move its streams) or of the live ``incarnation``
    (reporting none of its streams, from another address)."""
    hb = Heartbeat(
        id=f"forged-{datetime.now(UTC).timestamp()}",
        source="forger",
        time=datetime.now(UTC),
        server_id=server_id,
        incarnation=incarnation or f"{server_id}.forged",
        ip="10.6.6.6",
        port=6666,
        max_streams=100,
    )
    return encode(hb)


async def _dead_letters(c: Cluster) -> list[DeadLetter]:
    topic = c.topics.dlq
    ends = {TopicPartition(topic, p): e for p, e in (await end_offsets(c.bootstrap, topic)).items()}
    out: list[DeadLetter] = []
    consumer = make_consumer(c.bootstrap, auto_offset_reset="earliest")
    async with started(consumer):
        consumer.assign(sorted(ends))
        await consumer.seek_to_beginning(*ends)
        while [tp for tp in ends if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                out += [decode_dead_letter(r.value) for r in records if r.value is not None]
    return out


def _refusals(letters: list[DeadLetter]) -> set[tuple[str | None, str]]:
    """(server id, reason) of every refused heartbeat among ``letters``."""
    return {
        (d.key, d.error_message.split("(")[1].split(")")[0])
        for d in letters
        if d.error_type == "UnauthenticatedError"
    }


async def cli(c: Cluster, *args: str) -> tuple[int, str, str]:
    """``streamplane ARGS --bootstrap ... --topic-prefix ...`` (keygen: ARGS only)."""
    where = (
        [] if "keygen" in args else ["--bootstrap", c.bootstrap, "--topic-prefix", c.topics.prefix]
    )
    return await asyncio.to_thread(run, [*args, *where])


def refused(
    c: Cluster, letters: list[DeadLetter], expected: set[tuple[str, str]]
) -> Callable[[], Awaitable[str]]:
    """A check for ``wait_until``: every (server id, reason) of ``expected`` is in the DLQ
    (``letters`` is left holding the dead letters read)."""

    async def check() -> str:
        letters[:] = await _dead_letters(c)
        missing = expected - _refusals(letters)
        return f"not dead-lettered yet: {sorted(missing)}" if missing else ""

    return check


async def _certificate_of(c: Cluster, server_id: str, incarnation: str) -> bytes:
    """The session certificate ``server_id``'s live incarnation sends, read from the
    heartbeats topic (as any reader of the topic may)."""
    consumer = make_consumer(c.bootstrap, auto_offset_reset="earliest")
    async with started(consumer):
        tps = [TopicPartition(c.topics.heartbeats, p) for p in range(HEARTBEATS.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async with asyncio.timeout(20):
            while True:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    for r in records:
                        if r.key != server_id.encode() or r.value is None:
                            continue
                        if decode_heartbeat(r.value).incarnation != incarnation:
                            continue
                        found = dict(r.headers or ())
                        if SESSION_HEADER in found:
                            return bytes(found[SESSION_HEADER])


async def _send_forgeries(
    c: Cluster, w1_key_file: Path, forger_key_file: Path, w1_incarnation: str
) -> None:
    """w1's id certified by the forger's own key: once naming the forger's key id
    (wrong_key), once naming w1's (bad_signature); w1's real certificate, read from the
    topic, with a MAC made without its key (bad_mac); and for w2's id (session_mismatch)."""
    forger, w1 = keys.load(forger_key_file), keys.load(w1_key_file)
    async with started(make_producer(c.bootstrap)) as producer:

        async def send(server_id: str, value: bytes, headers: list[tuple[str, bytes]]) -> None:
            await producer.send_and_wait(
                c.topics.heartbeats, value, key=server_id.encode(), headers=headers
            )

        value = _forged("w1")
        await send("w1", value, forger.session("w1", "w1.forged").headers(value))
        value = _forged("w1")
        lying = keys.WorkerKey(forger.private, w1.key_id).session("w1", "w1.forged")
        await send("w1", value, lying.headers(value))
        cert = await _certificate_of(c, "w1", w1_incarnation)
        value = _forged("w1", w1_incarnation)
        guessed = keys.Session("w1", w1_incarnation, cert, bytes(32))  # K is not known
        await send("w1", value, guessed.headers(value))
        await send("w1", value, [(SESSION_HEADER, cert), (MAC_HEADER, bytes(32))])
        value = _forged("w2", w1_incarnation)
        await send("w2", value, guessed.headers(value))


async def test_only_enrolled_signed_workers_count_and_a_revoked_one_is_failed(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    async with open_cluster(
        request, kafka_bootstrap, topic_prefix, tmp_path, STREAMPLANE_OPEN_ENROLLMENT="false"
    ) as c:
        orchestrator = c.start_orchestrator("o1")
        monitor = start_monitor(c)
        await c.wait_for_log_line(orchestrator, "is the leader", 30)
        assert "open enrollment" not in orchestrator.log_text()
        await c.wait_for_log_line(monitor, "as the topic says", 30)
        await asyncio.sleep(1.5)  # its dead-letter reader stands at the end of the topic
        since = datetime.now(UTC)  # the leader's term mark is written by now
        async with watching_alerts(c) as seen:
            await _scenario(c, orchestrator, tmp_path)
            for source, severity in (("w1", "critical"), ("w2", "critical"), ("w3", "warning")):
                key = f"heartbeat_refused:{source}"
                await c.wait_until(lambda k=key: bool(seen.fired(k)) or f"{k} not fired", 20, key)
                (fired,) = seen.fired(key)  # once, however many were refused
                assert fired.severity == severity, fired
        until = datetime.now(UTC)
        await asyncio.sleep(2.5)  # idle cycles' marks are flushed every second
        window = ["--since", since.isoformat(), "--until", until.isoformat(), "--json"]
        code, out, err = await cli(c, "simulate", *window)
        assert code == 0, (out, err)
        replayed = json.loads(out)
        assert replayed["first_divergence"] is None, replayed["first_divergence"]
        assert replayed["simulated"] == replayed["real"] and replayed["cycles"] > 50


async def _scenario(c: Cluster, orchestrator: Proc, tmp_path: Path) -> None:
    key_files = {w: tmp_path / f"{w}.key" for w in ("w1", "w2")}
    # w1 through the command topic, w2 through the operator's CLI
    public = keys.generate(key_files["w1"]).read_text().strip()
    done, _ = await c.command(cmd.EnrollInstance, server_id="w1", public_key=public)
    assert done.type == "CommandCompleted", done
    code, out, err = await cli(c, "instances", "keygen", "--out", str(key_files["w2"]))
    assert (code, out.strip(), err) == (0, f"{key_files['w2']}.pub", ""), (code, out, err)
    code, out, err = await cli(c, "instances", "enroll", "w2", "--public-key", out.strip())
    assert code == 0 and "enrolled with key" in out, (code, out, err)
    code, _, err = await cli(c, "instances", "revoke", "w3")
    assert code == 1 and "rejected: not_enrolled" in err, (code, err)
    for w in ("w1", "w2"):
        c.start_worker(w, max_streams=10, STREAMPLANE_WORKER_KEY_FILE=str(key_files[w]))
    c.start_worker("w3", max_streams=10)  # not enrolled, no key
    await c.wait_until(
        lambda: {"w1", "w2"} <= set(c.fold().instances) or "w1, w2 not registered",
        30,
        "the enrolled workers registered",
    )
    await asyncio.gather(*(c.command(cmd.RegisterStream, stream_id=s) for s in STREAMS))
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "every stream runs once")
    assert c.streams_on("w1") and c.streams_on("w2"), c.running_by_stream()

    # a forged heartbeat moves nothing: w1 keeps its incarnation and its streams
    w1_incarnation = c.fold().instances["w1"].incarnation
    mark = len(c.log.events)
    forger_key = tmp_path / "forger.key"
    keys.generate(forger_key)
    await _send_forgeries(c, key_files["w1"], forger_key, w1_incarnation)
    letters: list[DeadLetter] = []
    await c.wait_until(
        refused(c, letters, EXPECTED_REFUSALS),
        30,
        "the unenrolled and forged heartbeats dead-lettered",
    )
    await asyncio.sleep(2)  # a cycle or more after the forgeries: nothing may follow them
    state = c.fold()
    assert "w3" not in state.instances
    assert state.instances["w1"].incarnation == w1_incarnation
    assert state.instances["w1"].status is InstanceStatus.ACTIVE
    assert not c.log.of(InstanceRegistered, since=mark) and not c.log.of(InstanceFailed, since=mark)
    forged = [d for d in letters if d.key == "w1"]
    assert all(d.message_type == "Heartbeat" and d.raw_value() for d in forged), forged
    assert {d.error_field for d in forged} >= {f"headers.{SESSION_HEADER}", f"headers.{MAC_HEADER}"}
    assert c.fold().instances["w2"].status is InstanceStatus.ACTIVE
    assert "refused (wrong_key)" in orchestrator.log_text()
    assert "refused (bad_mac)" in orchestrator.log_text()
    assert "heartbeats signed with key" in c.procs["w1"].log_text()
    assert f"session certificate for incarnation {w1_incarnation}" in c.procs["w1"].log_text()
    assert "heartbeats unsigned" in c.procs["w3"].log_text()

    # a revoked worker is failed and its streams move; its next incarnation never counts
    lost = c.streams_on("w1")
    mark = len(c.log.events)
    done, caused = await c.command(cmd.RevokeInstance, server_id="w1")
    assert done.type == "CommandCompleted", done
    # the revocation, w1's failover and the moves of its streams, all caused by the command
    assert [type(e) for e in caused][:2] == [InstanceRevoked, InstanceFailed], caused
    moved = caused[2:]
    assert all(isinstance(e, StreamAssigned) and e.server_id == "w2" for e in moved), moved
    assert {e.stream_id for e in moved} == lost, (moved, lost)  # type: ignore[attr-defined]
    await c.wait_until(
        lambda: (
            [(e.server_id, e.reason) for e in c.log.of(InstanceFailed, since=mark)]
            == [("w1", "instance_revoked")]
            or "no InstanceFailed(w1, instance_revoked) yet"
        ),
        10,
        "the revoked w1 failed",
    )
    await c.wait_until(
        lambda: c.running_once(STREAMS) or ("" if c.streams_on("w2") >= lost else "not on w2"),
        30,
        "w1's streams run on w2, every stream once",
    )
    await c.wait_until(
        refused(c, letters, {("w1", "revoked")}), 30, "the revoked worker's heartbeats refused"
    )
    state = c.fold()
    assert state.instances["w1"].status is InstanceStatus.FAILED
    assert [e.server_id for e in c.log.of(InstanceRegistered, since=mark)] == []
    assert state.finding_count == 0, state.findings
