"""The monitor's PostgreSQL signals against a real read model and a real database: a read
model frozen (SIGSTOP) while events flow makes ``read_model_lag_growing`` fire, and it resolves
once the read model runs again; a transaction held open makes ``long_db_transactions`` fire,
and it resolves when the transaction ends. The monitor's own ``/metrics`` shows the signals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from support.alerts import free_port, monitor_signal, start_monitor, watching_alerts
from support.cluster import Cluster, open_cluster

from control_plane.tools.harness import CLI
from events import commands as cmd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAG_BOUND = 10


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    topic_prefix: str,
    tmp_path: Path,
    database_url: str,
    pg_schema: str,
) -> AsyncIterator[Cluster]:
    env = {"STREAMPLANE_DATABASE_URL": database_url, "STREAMPLANE_DATABASE_SCHEMA": pg_schema}
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path, **env) as c:
        yield c


async def test_a_frozen_read_model_fires_lag_and_resolves_when_it_runs_again(
    cluster: Cluster,
) -> None:
    c = cluster
    c.start_orchestrator("o1")
    await c.wait_until(lambda: c.leader() is not None, 30, "a leader")
    reader = c.children.spawn("read-model", "read-model", [*CLI, "read-model"])
    port = free_port()
    monitor = start_monitor(
        c, STREAMPLANE_ALERT_LAG_BOUND=str(LAG_BOUND), STREAMPLANE_METRICS_ADDRESS=f":{port}"
    )
    key = "read_model_lag_growing:cluster"

    def lag() -> float | str:
        return monitor_signal(port, "read_model_lag_seq")

    await c.wait_until(lambda: lag() == 0.0 or f"lag {lag()}", 60, "the read model caught up")
    async with watching_alerts(c) as seen:
        c.pause(reader)
        for i in range(LAG_BOUND + 5):  # each one at least a StreamRegistered and an outcome
            await c.command(cmd.RegisterStream, stream_id=f"s{i}")
        await c.wait_until(
            lambda: seen.status(key) == "firing" or f"{key}: {seen.status(key)}, lag {lag()}",
            30,
            "read-model lag alert",
        )
        (alert,) = seen.fired(key)
        assert float(alert.evidence["value"]) > LAG_BOUND and alert.evidence["cause"] == "bound"
        c.resume(reader)
        await c.wait_until(lambda: seen.status(key) == "resolved" or lag(), 60, "lag resolved")
        await c.wait_until(lambda: lag() == 0.0 or f"lag {lag()}", 60, "caught up again")
    assert "Traceback" not in monitor.log_text()


async def test_a_long_transaction_fires_and_resolves_when_it_ends(
    cluster: Cluster, database_url: str
) -> None:
    c = cluster
    start_monitor(c, STREAMPLANE_MONITOR_LONG_TRANSACTION_AFTER="1.5")
    key = "long_db_transactions:cluster"
    conn = await asyncpg.connect(database_url, timeout=30)
    try:
        async with watching_alerts(c) as seen:
            tx = conn.transaction()
            await tx.start()
            await conn.execute("SELECT txid_current()")  # a transaction that holds an xid
            await c.wait_until(lambda: seen.status(key) == "firing" or "not yet", 30, key)
            assert int(seen.fired(key)[0].evidence["count"]) >= 1
            await tx.commit()
            # others' tests share this server: their long transactions may delay the resolve
            await c.wait_until(lambda: seen.status(key) == "resolved" or "not yet", 60, key)
    finally:
        await asyncio.wait_for(conn.close(), 30)
