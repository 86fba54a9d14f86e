"""The HTTP API against a real control plane: a real ``streamplane orchestrator`` and real
workers (processes, tests/support/cluster.py), a real read model in PostgreSQL kept by a
ReadModelProjector, and the FastAPI app in-process over httpx's ASGI transport. Every
endpoint is called; reads are compared with the fold of the control log at the seq they say
they are as of; every write goes through the orchestrator, whose outcome events come back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from support.api import ApiClient, caught_up, running_api
from support.cluster import Cluster, open_cluster

from control_plane.api import ApiSettings
from events import control as ev
from events.alerts import AlertFired, AlertResolved, AlertSeverity
from events.codec import encode
from events.topics import Topics
from projections.fold import fold
from projections.fold.rows import health_data
from projections.fold.state import ClusterState
from projections.io.kafka import make_producer, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STREAMS = [f"cam-{i}" for i in range(6)]
#: w2 starts a stream this long after being told, so a migration towards it stays in flight
START_DELAY = "2.5"


@pytest.fixture
async def stack(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
    pg_schema: str,
    tmp_path: Path,
) -> AsyncIterator[tuple[Cluster, ApiClient]]:
    settings = ApiSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
        api_command_wait=30.0,
    )
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        c.start_orchestrator("o1")
        c.start_worker("w1", max_streams=10)
        c.start_worker("w2", max_streams=10, STREAMPLANE_DEMO_START_DELAY=START_DELAY)
        await c.wait_until(
            lambda: {"w1", "w2"} <= set(c.fold().instances) or "not registered", 45, "workers"
        )
        async with running_api(settings) as api:
            yield c, api


def as_of(c: Cluster, seq: int) -> ClusterState:
    """The fold of what the harness read from the log, up to ``seq``."""
    return fold(e for e in c.log.events if e.seq <= seq)


async def settled(c: Cluster, api: ApiClient) -> ClusterState:
    """Wait until the read model is where the harness's log reader is; that state."""
    await asyncio.sleep(0.3)  # let the harness see what the last command caused
    seq = c.fold().seq
    await caught_up(api, seq)
    return as_of(c, seq)


async def test_reads_match_the_fold_and_writes_reach_the_orchestrator(
    stack: tuple[Cluster, ApiClient],
) -> None:
    c, api = stack
    for sid in STREAMS[:-1]:
        done = await api.post("/streams", json={"stream_id": sid, "params": {"url": "rtsp://x"}})
        assert done["outcome"]["type"] == "CommandCompleted"
        assert done["as_of_seq"] == done["outcome"]["seq"]
        # the stream and, at once, its placement (two workers with room): both caused by it
        assert [e["type"] for e in done["events"]] == ["StreamRegistered", "StreamAssigned"]
        assert {e["causationid"] for e in done["events"]} == {done["command_id"]}
    accepted = await api.post("/streams", 202, params={"wait": "false"},
                              json={"stream_id": STREAMS[-1]})  # fmt: skip
    assert accepted["status"] == "accepted"
    await c.wait_until(lambda: accepted["command_id"] in c.outcomes(), 30, "the 202 command done")
    assert isinstance(c.outcomes()[accepted["command_id"]][0], ev.CommandCompleted)
    await c.wait_until(lambda: c.running_once(STREAMS), 30, "every stream runs once")
    await _reads_match(c, api, await settled(c, api))
    await _paging(api)
    await _rejections_and_bad_input(api)


async def _reads_match(c: Cluster, api: ApiClient, state: ClusterState) -> None:
    health = await api.get("/health")
    assert health["as_of_seq"] == state.seq
    assert health["health"] == health_data(state)
    assert health["leader_id"] == "o1"
    instances = await api.get("/instances")
    assert {i["server_id"]: i["status"] for i in instances["instances"]} == {
        k: i.status.value for k, i in state.instances.items()
    }
    one = await api.get("/instances/w1")
    assert one["instance"]["max_streams"] == 10
    assert {s["stream_id"] for s in one["streams"]} == {
        sid for sid, s in state.streams.items() if s.server_id == "w1"
    }
    listed = await api.get("/streams")
    assert {s["stream_id"]: (s["server_id"], s["status"]) for s in listed["streams"]} == {
        sid: (s.server_id, s.status.value) for sid, s in state.streams.items()
    }
    stream = await api.get(f"/streams/{STREAMS[0]}")
    assert stream["stream"]["params"] == {"url": "rtsp://x"}
    assert stream["stream"]["server_id"] == state.streams[STREAMS[0]].server_id
    assert stream["owner_failure"] is None
    history = await api.get(f"/streams/{STREAMS[0]}/history")
    expected = [e.seq for e in c.log.events if e.subject == STREAMS[0] and e.seq <= state.seq]
    assert [e["seq"] for e in history["events"]] == expected
    assert history["events"][0]["type"] == "StreamRegistered"
    assert history["events"][0]["causationid"]  # the command that registered it
    assert all("reason" in e and "causationid" in e for e in history["events"])


async def _paging(api: ApiClient) -> None:
    first = await api.get("/streams", limit=4)
    assert (first["limit"], first["offset"], first["total"], first["next_offset"]) == (4, 0, 6, 4)
    rest = await api.get("/streams", limit=4, offset=first["next_offset"])
    assert rest["next_offset"] is None
    ids = [s["stream_id"] for s in first["streams"] + rest["streams"]]
    assert ids == sorted(STREAMS)
    running = await api.get("/streams", status="running", server_id="w1")
    assert all(s["server_id"] == "w1" and s["status"] == "running" for s in running["streams"])


async def _rejections_and_bad_input(api: ApiClient) -> None:
    ghost = await api.call("DELETE", "/streams/ghost", 409)
    assert (ghost["error"], ghost["reason"]) == ("rejected", "unknown_stream")
    assert ghost["command_id"]
    again = await api.post("/streams", 409, json={"stream_id": STREAMS[0]})
    assert again["reason"] == "already_registered"
    assert (await api.post("/instances/nobody/drain", 409))["reason"] == "unknown_instance"
    for params, field in (({"limit": 0}, "limit"), ({"limit": 10_001}, "limit"),
                          ({"limit": "ten"}, "limit"), ({"offset": -1}, "offset"),
                          ({"status": "sleeping"}, "status"),
                          ({"server_id": "a b"}, "server_id")):  # fmt: skip
        bad = await api.get("/streams", 400, **params)
        assert (bad["error"], bad["field"]) == ("bad_request", field), bad
        assert field in bad["message"]
    bodies: list[tuple[dict[str, Any], str]] = [
        ({"stream_id": "bad/id"}, "stream_id"),
        ({"stream_id": "x", "weight": 0}, "weight"),
        ({"stream_id": "x", "colour": 1}, "colour"),
        ({}, "stream_id"),
    ]
    for body, field in bodies:
        bad = await api.post("/streams", 400, json=body)
        assert bad["field"] == field, bad
    assert (await api.post("/streams", 400, content=b"{nope"))["field"] == "body"
    assert (await api.call("PUT", "/instances/w1/capacity", 400, json={"max_streams": -1}))[
        "field"
    ] == "max_streams"
    assert (await api.get("/no/such/route", 404))["error"] == "not_found"
    assert (await api.call("PATCH", "/health", 405))["error"] == "method_not_allowed"
    assert (await api.get("/streams/no-such-stream", 404))["field"] == "stream_id"
    assert (await api.get("/instances/no-such-instance", 404))["field"] == "server_id"


async def test_operations_history_failover_and_time_travel(
    stack: tuple[Cluster, ApiClient], kafka_bootstrap: str, topic_prefix: str
) -> None:
    c, api = stack
    for sid in STREAMS:
        await api.post("/streams", json={"stream_id": sid})
    await c.wait_until(lambda: c.running_once(STREAMS), 40, "every stream runs once")
    # the full check (a replay against the read model, desired sets and heartbeats)
    report = await api.get("/consistency", assignments="false")
    assert report["clean"] and report["consistency_score"] == 1.0, report
    assert report["checked"]["heartbeats"] == 2 and report["checked"]["read_model"] > 0

    capacity = await api.call("PUT", "/instances/w1/capacity", json={"max_streams": 12})
    assert [e["type"] for e in capacity["events"]] == ["InstanceCapacityChanged"]
    await _drain_shows_migrations_in_flight(c, api)

    dry = await api.post("/rebalance")
    plans = [e for e in dry["events"] if e["type"] == "RebalancePlanned"]
    assert plans and plans[0]["data"]["dry_run"] is True
    assert (await api.post("/rebalance", params={"dry_run": "false"}))["outcome"]["seq"] > 0
    check = await api.post("/check", params={"repair": "true"})
    assert check["outcome"]["data"]["command_type"] == "RunConsistencyCheck"
    recover = await api.post("/recover")
    assert recover["outcome"]["data"]["command_type"] == "EmergencyRecovery"

    moved = await _kill_and_find_owner_failure(c, api)
    state = await settled(c, api)
    await _time_travel(c, api, state)
    await _lag_alerts_metrics(api, kafka_bootstrap, topic_prefix, moved)


async def _drain_shows_migrations_in_flight(c: Cluster, api: ApiClient) -> None:
    on_w1 = (await api.get("/streams", server_id="w1"))["streams"]
    assert on_w1, "w1 holds no stream to drain"
    drained = await api.post("/instances/w1/drain")
    assert [e["type"] for e in drained["events"]][:1] == ["InstanceDraining"]
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(30):
        while not seen:  # w2 starts a stream START_DELAY s after being told: in flight
            page = await api.get("/migrations", server_id="w1")
            seen = page["migrations"]
            await asyncio.sleep(0.1)
    state = as_of(c, page["as_of_seq"])
    assert {m["stream_id"] for m in seen} == set(state.in_flight)
    assert all((m["from_server"], m["to_server"], m["outcome"]) == ("w1", "w2", "in_flight")
               for m in seen)  # fmt: skip
    assert (await api.get("/migrations", stream_id=seen[0]["stream_id"]))["migrations"]
    await c.wait_until(lambda: c.fold().instances["w1"].drained or "draining", 40, "w1 drained")
    undrained = await api.post("/instances/w1/undrain")
    assert [e["type"] for e in undrained["events"]] == ["InstanceUndrained"]
    history = await api.get(f"/streams/{seen[0]['stream_id']}/history")
    assert [m["outcome"] for m in history["migrations"]][-1:] in (["completed"], ["in_flight"])


async def _kill_and_find_owner_failure(c: Cluster, api: ApiClient) -> str:
    await c.wait_until(lambda: c.running_once(STREAMS), 40, "every stream runs once")
    victim = c.procs["w2"]
    lost = sorted(c.streams_on("w2"))
    assert lost, f"w2 runs nothing: {c.running_by_stream()}"
    c.kill(victim)
    await c.wait_until(lambda: c.running_once(STREAMS), 40, "every stream runs again once")
    await settled(c, api)
    failed = [e for e in c.log.of(ev.InstanceFailed) if e.server_id == "w2"]
    assert failed
    stream = await api.get(f"/streams/{lost[0]}")
    assert stream["stream"]["server_id"] == "w1"
    failure = stream["owner_failure"]
    assert (failure["type"], failure["subject"], failure["seq"]) == (
        "InstanceFailed",
        "w2",
        failed[-1].seq,
    )
    history = await api.get(f"/streams/{lost[0]}/history")
    assert history["owner_failures"][-1]["seq"] == failed[-1].seq
    moves = [e for e in history["events"] if e["reason"] == "instance_failed"]
    assert moves and all(e["seq"] > failed[-1].seq for e in moves)
    assert (await api.get("/instances", status="failed"))["instances"][0]["server_id"] == "w2"
    return lost[0]


async def _time_travel(c: Cluster, api: ApiClient, state: ClusterState) -> None:
    events = [e for e in c.log.events if e.seq <= state.seq]
    middle = events[len(events) // 2]
    by_seq = await api.get("/state", seq=middle.seq)
    expected = fold(e for e in events if e.seq <= middle.seq)
    assert by_seq["as_of_seq"] == middle.seq
    assert {s["stream_id"]: s["server_id"] for s in by_seq["streams"]} == {
        sid: s.server_id for sid, s in expected.streams.items()
    }
    assert by_seq["health"] == health_data(expected)
    by_time = await api.get("/state", at=middle.time.isoformat())
    in_time = fold(e for e in events if e.time <= middle.time)
    assert by_time["as_of_seq"] == in_time.seq
    assert {i["server_id"] for i in by_time["instances"]} == set(in_time.instances)
    before = await api.get("/state", at=(events[0].time - timedelta(days=1)).isoformat())
    assert (before["as_of_seq"], before["streams"], before["instances"]) == (0, [], [])
    now = await api.get("/state", seq=state.seq)
    assert now["health"] == health_data(state)
    latest = await api.get("/state")  # neither: now, the whole log
    assert latest["as_of_seq"] >= state.seq
    for params in ({"at": "yesterday"}, {"at": "2026-01-01T00:00:00"}, {"at": "-8258945"},
                   {"at": middle.time.isoformat(), "seq": 1}, {"seq": -1}):  # fmt: skip
        bad = await api.get("/state", 400, **params)
        assert bad["field"] in ("at", "seq"), bad


async def _lag_alerts_metrics(
    api: ApiClient, bootstrap: str, prefix: str, moved_stream: str
) -> None:
    lag = await api.get("/lag")
    assert lag["log_end_offset"] >= lag["next_offset"] > 0
    assert lag["lag_records"] == lag["log_end_offset"] - lag["next_offset"]
    assert (await api.get("/alerts"))["alerts"] == []
    fired = _alert(AlertFired, seq=lag["as_of_seq"])
    await _publish_alerts(bootstrap, Topics(prefix), fired)
    alerts = await api.get("/alerts")
    assert [(a["key"], a["status"], a["severity"]) for a in alerts["alerts"]] == [
        (fired.key, "firing", "critical")
    ]
    assert alerts["as_of_seq"] == lag["as_of_seq"]
    await _publish_alerts(bootstrap, Topics(prefix), _alert(AlertResolved, seq=lag["as_of_seq"]))
    assert (await api.get("/alerts"))["alerts"] == []

    await api.get("/streams/no-such-stream", 404)
    await api.get("/no/such/route", 404)
    text = (await api.http.get("/metrics")).text
    assert 'route="/streams/{stream_id}"' in text
    one = 'streamplane_api_requests_total{method="GET",route="/streams/{stream_id}",status="200"}'
    assert one in text
    assert 'route="/streams/{stream_id}",status="404"' in text
    assert "streamplane_api_request_duration_seconds_bucket" in text
    assert 'route="unmatched"' in text
    assert moved_stream not in text  # no label per stream id
    assert "process_resident_memory_bytes" in text
    spec = (await api.http.get("/openapi.json")).json()
    assert {"/health", "/streams/{stream_id}/history", "/state", "/alerts", "/lag",
            "/migrations", "/recover", "/check"} <= set(spec["paths"])  # fmt: skip
    assert "422" not in str(spec["paths"]["/streams"]["get"]["responses"])
    assert (await api.http.get("/docs")).status_code == 200


def _alert(cls: type[AlertFired] | type[AlertResolved], *, seq: int) -> Any:
    from datetime import UTC, datetime

    return cls(
        id=f"alert-{cls.__name__}",
        source="tests/api",
        time=datetime.now(UTC),
        key="zone_failures:eu-1a",
        rule="zone_failures",
        severity=AlertSeverity.CRITICAL,
        summary="2 instances of zone eu-1a failed within 60s",
        evidence={"failed": "w7,w8"},
        action="check the zone's network and power",
        seq=seq,
    )


async def _publish_alerts(bootstrap: str, topics: Topics, *alerts: Any) -> None:
    async with started(make_producer(bootstrap, linger_ms=0)) as producer:
        for alert in alerts:
            await producer.send_and_wait(topics.alerts, encode(alert), key=alert.key.encode())
