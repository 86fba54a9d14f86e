"""PostgreSQL stopped for 30 s under load, then started again, under a real
``streamplane read-model`` process: it pauses (no crash, one clear log line,
``streamplane_read_model_waiting_for_database`` = 1), resumes by itself, and ends equal to the
replay of the log (``audit drift``'s comparison, :func:`control_plane.drift_io.check_read_model`).

The server stopped is a private one this test starts (tests/support/private_pg.py): the shared
test database is never stopped."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.private_pg import PrivatePostgres, private_postgres
from support.scrape import Scrape, scrape

from control_plane.drift_io import check_read_model
from control_plane.tools.harness import CLI, Child, Children, child_env
from events import encode
from events.topics import DLQ, EVENTS, Topics
from projections.fold import fold
from projections.io.kafka import make_producer, publish, started
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.testing.synthetic import generate_history

pytestmark = [
    pytest.mark.integration,
    pytest.mark.chaos,
    pytest.mark.slow,
    pytest.mark.timeout(240),
]

OUTAGE = 30.0
#: events written before the outage, and while it lasts (about 100 per second)
BEFORE, DURING = 1000, 3500


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _until(
    port: int,
    ok: Callable[[Scrape], bool],
    within: float,
    what: str,
    last: list[Scrape],
    reader: Child,
) -> Scrape:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            s = await scrape(port)
        except OSError:
            s = None
        if s is not None:
            last[:] = [s]
            if ok(s):
                return s
        await asyncio.sleep(0.2)
    tail = "\n".join(reader.log_tail(40))
    pytest.fail(f"not within {within:.0f}s: {what}; {reader.describe()}; its log ends:\n{tail}")


async def _produce(bootstrap: str, topic: str, values: list[bytes], seconds: float) -> None:
    """``values`` in 50 small transactions spread over ``seconds`` (the load)."""
    chunk = max(1, len(values) // 50)
    async with started(make_producer(bootstrap)) as producer:
        for i in range(0, len(values), chunk):
            await publish(producer, topic, values[i : i + chunk])
            await asyncio.sleep(seconds / 50)


async def _outage(pg: PrivatePostgres, port: int, reader: Child) -> float:
    """Stop the server, see the read model wait, start it after OUTAGE s; returns the time
    the read model took to show it waits."""
    t0 = time.monotonic()
    await asyncio.to_thread(pg.stop)
    last: list[Scrape] = []
    await _until(
        port,
        lambda s: s.num("streamplane_read_model_waiting_for_database") == 1,
        OUTAGE - 2,
        "the read model shows it waits for PostgreSQL",
        last,
        reader,
    )
    noticed = time.monotonic() - t0
    assert reader.alive, reader.log_tail()
    await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - t0)))
    await asyncio.to_thread(pg.start)
    return noticed


async def test_the_read_model_waits_out_a_30s_database_outage_under_load(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    history = generate_history(BEFORE + DURING, seed=29, instances=10, streams=120)
    values = [encode(e) for e in history]
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (EVENTS, DLQ))
    await _publish_all(kafka_bootstrap, topics.events, values[:BEFORE])
    port = _free_port()
    fast = {"attempts": 3, "backoff_base": 0.1, "backoff_cap": 1, "breaker_reset": 3}
    with private_postgres(tmp_path) as pg:
        env = child_env(
            kafka_bootstrap,
            topic_prefix,
            DATABASE_URL=pg.url,
            METRICS_ADDRESS=f"127.0.0.1:{port}",
            READ_MODEL_RECOVERY_PAUSE="0.5",
            READ_MODEL_BATCH_MAX="200",
            DATABASE=json.dumps({**fast, "connect_timeout": 2}),
        )
        children = Children(tmp_path / "logs", env)
        reader = children.spawn("read-model", "read-model", [*CLI, "read-model"])
        last: list[Scrape] = []
        try:
            await _until(
                port,
                lambda s: s.num("streamplane_read_model_applied_seq") == BEFORE,
                90,
                "the read model applies the first events",
                last,
                reader,
            )
            load = asyncio.create_task(
                _produce(kafka_bootstrap, topics.events, values[BEFORE:], OUTAGE + 5)
            )
            noticed = await _outage(pg, port, reader)
            await load
            assert reader.alive, reader.log_tail()  # no crash while the server was away
            done = await _until(
                port,
                lambda s: s.num("streamplane_read_model_applied_seq") == len(history),
                60,
                "the read model catches up after the restart",
                last,
                reader,
            )
        finally:
            stubborn = await asyncio.to_thread(children.stop_all, 20.0)
        assert not stubborn and reader.returncode == 0, reader.log_tail()
        assert noticed < 20, noticed
        assert done.num("streamplane_read_model_waiting_for_database") == 0
        assert done.num("streamplane_read_model_database_pauses_total") >= 1
        assert done.num("streamplane_read_model_lag_offsets") == 0

        logs = reader.log_text()
        paused = [line for line in logs.splitlines() if "read model paused at offset" in line]
        assert len(paused) == done.num("streamplane_read_model_database_pauses_total"), logs
        assert "waiting for PostgreSQL" in paused[0] and "127.0.0.1:" in paused[0]
        assert "read model resumed: PostgreSQL is back after" in logs
        assert 1 <= logs.count("read model still waiting for PostgreSQL") <= OUTAGE / 10 + 1
        assert "Traceback" not in logs

        settings = ReadModelSettings(
            kafka_bootstrap=kafka_bootstrap, topic_prefix=topic_prefix, database_url=pg.url
        )
        report = await check_read_model(settings)
        assert report.clean, report.drifts
        assert (report.as_of_seq, report.head_seq, report.lag) == (len(history),) * 2 + (0,)
        assert report.checked > 0
        assert fold(history).finding_count == 0


async def _publish_all(bootstrap: str, topic: str, values: list[bytes]) -> None:
    async with started(make_producer(bootstrap)) as producer:
        await publish(producer, topic, values)
