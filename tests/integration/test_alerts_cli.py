"""``streamplane alerts`` against a real Kafka: the firing set (latest record per key), its
JSON, ``--all``, ``--follow`` ended by Ctrl-C with exit code 0, and one ``error:`` line when
Kafka is down (exit 3) or the topic is missing (exit 2)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from events.alerts import AlertFired, AlertMessage, AlertResolved
from events.codec import encode
from events.topics import Topics
from projections.io.kafka import make_producer, started
from projections.io.topics import ensure_topics

pytestmark = pytest.mark.integration

STREAMPLANE = str(Path(sys.executable).parent / "streamplane")
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def record(cls: type[AlertFired] | type[AlertResolved], key: str, severity: str) -> AlertMessage:
    return cls(
        id=f"{cls.__name__}-{key}",
        source="streamplane/monitor",
        time=T0,
        key=key,
        rule=key.partition(":")[0],
        severity=severity,
        summary=f"summary of {key}",
        evidence={"n": "1"},
        action=f"fix {key}",
        seq=7,
    )


async def publish(bootstrap: str, topics: Topics, messages: list[AlertMessage]) -> None:
    producer = make_producer(bootstrap, linger_ms=0)
    async with started(producer, kafka_timeout=30, what="test alert writer"):
        for m in messages:
            await producer.send_and_wait(topics.alerts, encode(m), key=m.key.encode())


def env(bootstrap: str, prefix: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPLANE_")}
    return out | {"STREAMPLANE_KAFKA_BOOTSTRAP": bootstrap, "STREAMPLANE_TOPIC_PREFIX": prefix}


def run(args: list[str], bootstrap: str, prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STREAMPLANE, "alerts", *args],
        env=env(bootstrap, prefix),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
async def topics(kafka_bootstrap: str, topic_prefix: str) -> Topics:
    names = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, names)
    await publish(
        kafka_bootstrap,
        names,
        [
            record(AlertFired, "dead_letters:cluster", "warning"),
            record(AlertFired, "zone_failures:z1", "critical"),
            record(AlertFired, "poison_stream:s9", "warning"),
            record(AlertResolved, "poison_stream:s9", "warning"),
        ],
    )
    return names


async def test_lists_what_fires_worst_first(kafka_bootstrap: str, topics: Topics) -> None:
    done = await asyncio.to_thread(run, [], kafka_bootstrap, topics.prefix)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"# 2 alert(s) firing on {topics.alerts}"
    assert lines[1].startswith("critical zone_failures:z1: summary of zone_failures:z1")
    assert lines[2].strip() == "action: fix zone_failures:z1"
    assert lines[3].startswith("warning  dead_letters:cluster")
    assert "poison_stream" not in done.stdout

    as_json = await asyncio.to_thread(run, ["--json"], kafka_bootstrap, topics.prefix)
    rows = json.loads(as_json.stdout)
    assert [r["key"] for r in rows] == ["zone_failures:z1", "dead_letters:cluster"]
    assert rows[0] | {"evidence": None} == {
        "key": "zone_failures:z1",
        "rule": "zone_failures",
        "about": "z1",
        "status": "firing",
        "severity": "critical",
        "summary": "summary of zone_failures:z1",
        "evidence": None,
        "action": "fix zone_failures:z1",
        "seq": 7,
        "at": "2026-12-01T12:00:00Z",
        "held_back": 0,
    }

    every = await asyncio.to_thread(run, ["--all", "--json"], kafka_bootstrap, topics.prefix)
    statuses = {r["key"]: r["status"] for r in json.loads(every.stdout)}
    assert statuses == {
        "dead_letters:cluster": "firing",
        "zone_failures:z1": "firing",
        "poison_stream:s9": "resolved",
    }


async def test_follow_prints_transitions_and_ctrl_c_ends_it_cleanly(
    kafka_bootstrap: str, topics: Topics
) -> None:
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [STREAMPLANE, "alerts", "--follow"],
        env=env(kafka_bootstrap, topics.prefix),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        header = await asyncio.to_thread(proc.stdout.readline)
        assert header.startswith("# 2 alert(s) firing")
        await publish(
            kafka_bootstrap, topics, [record(AlertResolved, "zone_failures:z1", "critical")]
        )
        deadline = time.monotonic() + 30
        seen = ""
        while "RESOLVED" not in seen and time.monotonic() < deadline:
            seen = await asyncio.to_thread(proc.stdout.readline)
        assert "RESOLVED critical zone_failures:z1: summary of zone_failures:z1" in seen
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "error" not in err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_kafka_down_is_one_error_line_and_exit_3() -> None:
    done = run([], f"127.0.0.1:{_closed_port()}", "t-alerts-down")
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stderr


def test_a_prefix_without_the_topic_is_a_usage_error(kafka_bootstrap: str) -> None:
    done = run([], kafka_bootstrap, "t-alerts-nobody-set-this-up")
    assert done.returncode == 2, done.stderr
    assert "alerts does not exist" in done.stderr and "Traceback" not in done.stderr


def _monitor(bootstrap: str, prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [STREAMPLANE, "monitor"],
        env=env(bootstrap, prefix) | {"STREAMPLANE_MONITOR_KAFKA_TIMEOUT": "2"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(proc: subprocess.Popen[str]) -> str:
    try:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out


@pytest.mark.slow
def test_the_monitor_waits_for_kafka_with_back_off_and_stops_cleanly() -> None:
    proc = _monitor(f"127.0.0.1:{_closed_port()}", "t-alerts-down")
    time.sleep(4)
    assert proc.poll() is None, "the monitor died instead of retrying"
    out = _stop(proc)
    assert proc.returncode == 0, out[-2000:]
    assert "Kafka unavailable" in out and "retrying in" in out
    assert "Traceback" not in out


def test_the_monitor_stops_cleanly_on_sigterm(kafka_bootstrap: str, topics: Topics) -> None:
    proc = _monitor(kafka_bootstrap, topics.prefix)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while "as the topic says" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "2 alert(s) firing as the topic says" in line  # what the topic holds
    finally:
        out = _stop(proc)
    assert proc.returncode == 0, out[-2000:]
    assert "monitor stopped after" in out and "Traceback" not in out
