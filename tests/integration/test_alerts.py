"""The monitor against a real cluster: every rule triggered for real, seen on ``<prefix>.alerts``
as it fires, and seen resolved once the cause goes away.

Real processes on a real Kafka (tests/support/cluster.py): an orchestrator, demo workers and
``streamplane monitor``; the test reads the alerts topic with the reader every client uses.
The rules' windows are shortened by settings so that a cause can age out within a test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from support.alerts import AlertsSeen, start_monitor, watching_alerts, webhook_server
from support.cluster import Cluster, open_cluster

from control_plane.errors import CommandRejectedError
from events import commands as cmd
from events.alerts import AlertFired, AlertResolved
from events.codec import decode_alert
from projections.fold.state import AssignmentStatus, InstanceStatus
from projections.io.kafka import make_producer, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: seconds for an alert to fire once its cause is there (detection + evaluations)
FIRE_WITHIN = 30.0


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        yield c


def registered(c: Cluster, *server_ids: str) -> str:
    active = {s for s, i in c.fold().instances.items() if i.status is InstanceStatus.ACTIVE}
    missing = sorted(set(server_ids) - active)
    return f"not active: {missing}" if missing else ""


def status_is(seen: AlertsSeen, key: str, wanted: str) -> str:
    status = seen.status(key)
    return "" if status == wanted else f"{key} is {status}; topic has {sorted(seen.keys())}"


async def test_zone_failures_fire_when_a_zone_dies_and_resolve_when_it_ages_out(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start_orchestrator("o1")
    for name, zone in (("w1", "z1"), ("w2", "z1"), ("w3", "z2")):
        c.start_worker(name, max_streams=5, STREAMPLANE_ZONE=zone)
    await c.wait_until(lambda: registered(c, "w1", "w2", "w3"), 30, "three workers active")
    start_monitor(c, STREAMPLANE_ALERT_ZONE_WINDOW="12")
    async with watching_alerts(c) as seen:
        c.kill(c.procs["w1"])
        c.kill(c.procs["w2"])
        key = "zone_failures:z1"
        await c.wait_until(lambda: status_is(seen, key, "firing"), FIRE_WITHIN, "zone z1 alert")
        (alert,) = seen.fired(key)
        assert alert.severity.value == "critical"
        assert alert.evidence["instances"] == "w1,w2" and alert.evidence["zone"] == "z1"
        assert alert.seq > 0 and "zone z1" in alert.action
        # the zone comes back; the drops age out of the window: the alert resolves, once
        c.start_worker("w1", max_streams=5, STREAMPLANE_ZONE="z1")
        c.start_worker("w2", max_streams=5, STREAMPLANE_ZONE="z1")
        await c.wait_until(lambda: status_is(seen, key, "resolved"), 40, "zone z1 resolved")
        await asyncio.sleep(2)
        assert len(seen.fired(key)) == 1 and len(seen.resolved(key)) == 1
        assert "zone_failures:z2" not in seen.keys()


async def test_a_poison_stream_fires_once_across_a_monitor_restart_and_resolves(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start_orchestrator("o1")
    for name in ("w1", "w2", "w3"):
        c.start_worker(name, max_streams=5, STREAMPLANE_DEMO_FAIL_STREAMS="bad-1")
    await c.wait_until(lambda: registered(c, "w1", "w2", "w3"), 30, "three workers active")
    monitor = start_monitor(c)
    async with watching_alerts(c) as seen:
        await c.command(cmd.RegisterStream, stream_id="bad-1")
        key = "poison_stream:bad-1"
        await c.wait_until(lambda: status_is(seen, key, "firing"), FIRE_WITHIN, "poison alert")
        await c.wait_until(
            lambda: c.fold().streams["bad-1"].status is AssignmentStatus.FAILED or "not parked",
            FIRE_WITHIN,
            "bad-1 parked",
        )
        # kill -9 and start again: the new monitor reads the topic and does not fire again
        c.kill(monitor)
        again = start_monitor(c)
        await c.wait_for_log_line(again, "1 alert(s) firing as the topic says", 30)
        await asyncio.sleep(3)  # six evaluations of the new monitor
        assert len(seen.fired(key)) == 1, seen.of(key)
        assert seen.status(key) == "firing"
        await c.command(cmd.DeregisterStream, stream_id="bad-1")
        await c.wait_until(lambda: status_is(seen, key, "resolved"), 20, "poison resolved")
        (resolved,) = seen.resolved(key)
        assert resolved.evidence["parked"] == "true"


async def test_rejections_and_dead_letters_fire_resolve_and_reach_a_webhook(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start_orchestrator("o1")
    await c.wait_until(lambda: c.leader() is not None, 30, "a leader")
    with webhook_server() as hook:
        dead = "http://127.0.0.1:9/never"  # nothing listens: must not hold the other back
        monitor = start_monitor(
            c,
            STREAMPLANE_MONITOR_WEBHOOKS=f"{dead},{hook.url}",
            STREAMPLANE_MONITOR_WEBHOOK_ATTEMPTS="2",
            STREAMPLANE_ALERT_REJECT_WINDOW="8",
            STREAMPLANE_ALERT_DEAD_LETTER_WINDOW="5",
        )
        await c.wait_for_log_line(monitor, "as the topic says", 30)
        await asyncio.sleep(1.5)  # the monitor has sampled the dead-letter count once
        async with watching_alerts(c) as seen:
            for _ in range(3):
                with pytest.raises(CommandRejectedError):
                    await c.command(cmd.DrainInstance, server_id="nobody")
            await _send_garbage_heartbeats(c, 2)
            rejected, dead_letters = "command_rejected:DrainInstance", "dead_letters:cluster"
            for key in (rejected, dead_letters):
                await c.wait_until(lambda k=key: status_is(seen, k, "firing"), FIRE_WITHIN, key)
            assert seen.fired(rejected)[0].evidence["count"] == "3"
            assert seen.fired(dead_letters)[0].evidence["total"] == "2"
            for key in (rejected, dead_letters):
                await c.wait_until(lambda k=key: status_is(seen, k, "resolved"), 30, key)
            await c.wait_until(
                lambda: len(hook.deliveries) >= 4 or f"{len(hook.deliveries)} delivered",
                20,
                "the webhook got all four transitions",
            )
            on_topic = {r.id: r for r in seen.records}
        delivered = [decode_alert(d.body) for d in hook.deliveries]
        assert {d.content_type for d in hook.deliveries} == {"application/cloudevents+json"}
        assert [type(d) for d in delivered].count(AlertFired) == 2
        assert [type(d) for d in delivered].count(AlertResolved) == 2
        assert all(on_topic[d.id] == d for d in delivered)  # the very records on the topic
        assert "secret-token" not in monitor.log_text()


async def _send_garbage_heartbeats(c: Cluster, count: int) -> None:
    producer: AIOKafkaProducer = make_producer(c.bootstrap, linger_ms=0)
    async with started(producer, kafka_timeout=30, what="garbage sender"):
        for i in range(count):
            value = orjson.dumps({"type": "Heartbeat", "data": {"port": 70000 + i}})
            await producer.send_and_wait(c.topics.heartbeats, value, key=b"ghost")
