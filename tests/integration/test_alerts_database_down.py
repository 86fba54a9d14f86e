"""PostgreSQL going away makes ``database_unreachable`` fire, and its return resolves it.

The development PostgreSQL is shared, so it is never stopped: this test starts a private one
with the project's own launcher (``control_plane.tools.infra.postgres``) under its own cache
directory and on a free port, stops and starts *that* one, and removes it at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support.alerts import start_monitor, watching_alerts
from support.cluster import Cluster, open_cluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class PrivatePostgres:
    """One PostgreSQL server of our own (the launcher runs in a child with its env)."""

    def __init__(self, home: Path, port: int) -> None:
        self.env = {
            **os.environ,
            "STREAMPLANE_CACHE_DIR": str(home),
            "STREAMPLANE_PG_PORT": str(port),
        }
        self.url = f"postgresql://postgres@127.0.0.1:{port}/streamplane"
        #: its passwords (SCRAM): the pgpass file that `infra` writes below its cache dir
        self.pgpass = str(home / "postgres-secrets" / "pgpass")

    def _run(self, call: str) -> None:
        code = f"from control_plane.tools.infra import postgres; postgres.{call}"
        subprocess.run([sys.executable, "-c", code], env=self.env, check=True, timeout=120)

    def up(self) -> None:
        self._run("up()")

    def down(self, purge: bool = False) -> None:
        self._run(f"down(purge={purge})")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if shutil.which("runuser") is None and os.geteuid() == 0:
        pytest.fail("starting a private PostgreSQL as root needs runuser (util-linux)")
    home = Path(tempfile.mkdtemp(prefix="streamplane-pg-test-"))
    home.chmod(0o755)  # the postgres user must reach its data directory below it
    server = PrivatePostgres(home, _free_port())
    try:
        server.up()
        yield server
    finally:
        try:
            server.down(purge=True)
        finally:
            shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        yield c


async def test_postgres_down_fires_and_its_return_resolves(
    cluster: Cluster, private_postgres: PrivatePostgres
) -> None:
    c = cluster
    monitor = start_monitor(
        c,
        STREAMPLANE_DATABASE_URL=private_postgres.url,
        PGPASSFILE=private_postgres.pgpass,
        STREAMPLANE_ALERT_DATABASE_DOWN_AFTER="2",
    )
    key = "database_unreachable:cluster"
    await c.wait_for_log_line(monitor, "no read-model tracking row", 30)  # it reached the db
    async with watching_alerts(c) as seen:
        private_postgres.down()
        await c.wait_until(lambda: seen.status(key) == "firing" or seen.status(key), 30, key)
        (alert,) = seen.fired(key)
        assert alert.severity.value == "critical" and float(alert.evidence["value"]) > 2
        private_postgres.up()
        await c.wait_until(lambda: seen.status(key) == "resolved" or seen.status(key), 60, key)
    assert "Traceback" not in monitor.log_text()
