"""No secret in a log line, an error message or ``--help``: a secure stack is run and
everything it printed is searched for the credentials.

The stack: a PostgreSQL of its own with password (SCRAM) authentication, started by
``streamplane infra up`` exactly as on a developer's machine (its own cache dir and port:
``STREAMPLANE_SECURE_PG_PORT`` when set, else any free one); a real orchestrator and worker;
``streamplane read-model`` as the read model's role; ``streamplane api`` as the API's role
with a token file, at DEBUG. Requests with good, bad and too-small tokens, a write, an API
given a wrong password, a command line with a password in its URL against a closed port.
Then every log file, the infra's output, PostgreSQL's own log, every CLI output and the
``--help`` of every command (with secrets in the environment) are searched for each role's
password and each token. Also checked on the way: SCRAM refuses a connection without the
password, and the API's role cannot write."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from support.cli_walk import closed_port, commands
from support.cluster import Cluster, open_cluster
from typer.testing import CliRunner

from control_plane.api.tokens import Scope, create
from control_plane.cli import app
from control_plane.tools.harness import CLI
from control_plane.tools.infra.postgres import fallback_home
from events import commands as cmd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INFRA = (sys.executable, "-m", "control_plane.tools.infra")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class SecurePg:
    port: int
    cache: Path
    env: dict[str, str]
    output: str  # what `infra up` printed

    @property
    def pgpass(self) -> Path:
        return self.cache / "postgres-secrets" / "pgpass"

    def url(self, role: str) -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/streamplane"

    def passwords(self) -> dict[str, str]:
        files = (self.cache / "postgres-secrets").glob("*.password")
        return {f.stem: f.read_text().strip() for f in files}


@pytest.fixture
def secure_pg() -> Iterator[SecurePg]:
    """``streamplane infra up`` of a PostgreSQL of this test's own; stopped and purged after."""
    port = int(os.environ.get("STREAMPLANE_SECURE_PG_PORT") or _free_port())
    # below /tmp, readable by the postgres user (PostgreSQL's tools run as it under root)
    cache = Path(tempfile.mkdtemp(prefix="streamplane-secure-", dir="/tmp"))
    os.chmod(cache, 0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPLANE_")}
    env |= {"STREAMPLANE_PG_PORT": str(port), "STREAMPLANE_CACHE_DIR": str(cache)}
    env.pop("PGPASSFILE", None)
    try:
        up = subprocess.run(
            [*INFRA, "up", "--brokers", "0"], env=env, capture_output=True, text=True, timeout=180
        )
        assert up.returncode == 0, up.stderr
        yield SecurePg(port, cache, env, up.stdout + up.stderr)
    finally:
        subprocess.run([*INFRA, "down", "--purge"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(cache, ignore_errors=True)


async def _serving(base: str, headers: dict[str, str], seq: int) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=5, headers=headers) as client:
        async with asyncio.timeout(60):
            while True:
                try:
                    r = await client.get("/health")
                    if r.status_code == 200 and r.json()["as_of_seq"] >= seq:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)


async def _database_checks(pg: SecurePg, tmp: Path) -> None:
    """SCRAM refuses a client without the password; the API's role cannot write."""
    empty = tmp / "empty.pgpass"
    empty.touch(mode=0o600)
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(pg.url("streamplane_api"), passfile=str(empty), timeout=10)
    api = await asyncpg.connect(pg.url("streamplane_api"), passfile=str(pg.pgpass), timeout=10)
    try:
        assert await api.fetchval("SELECT count(*) FROM streams") >= 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await api.execute("DELETE FROM streams")
    finally:
        await api.close()


def _start(c: Cluster, pg: SecurePg, tokens_file: Path, port: int, tmp: Path) -> int:
    """The read model and the API as their roles, and an API with a wrong password (its
    port is returned)."""
    common = {"PGPASSFILE": str(pg.pgpass), "STREAMPLANE_LOG_LEVEL": "DEBUG"}
    rm = {**common, "STREAMPLANE_DATABASE_URL": pg.url("streamplane_read_model")}
    c.children.spawn("read-model", "read-model", [*CLI, "read-model"], rm)
    api = {
        **common,
        "STREAMPLANE_DATABASE_URL": pg.url("streamplane_api"),
        "STREAMPLANE_API_TOKENS_FILE": str(tokens_file),
    }
    args = [*CLI, "api", "--host", "127.0.0.1", "--no-with-read-model"]
    c.children.spawn("api", "api", [*args, "--port", str(port)], api)
    wrong = tmp / "wrong.pgpass"  # an API whose database password is wrong: errors, logged
    wrong.write_text(f"127.0.0.1:{pg.port}:*:streamplane_api:not-the-password\n")
    wrong.chmod(0o600)
    wrong_port = _free_port()
    wrong_env = {**api, "PGPASSFILE": str(wrong)}
    c.children.spawn("api-wrong-password", "api", [*args, "--port", str(wrong_port)], wrong_env)
    return wrong_port


async def _wrong_password_fails(port: int, token: str) -> None:
    """The API with the wrong database password: a read fails (non-retriable: 500) naming
    the role, and is logged."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        async with asyncio.timeout(60):
            while True:
                try:
                    r = await client.get("/health", headers=headers)
                    break
                except httpx.HTTPError:  # not listening yet
                    await asyncio.sleep(0.2)
    assert r.status_code == 500 and "password authentication failed" in r.text, r.text


async def _requests(base: str, tokens: dict[str, str]) -> None:
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        assert (await client.get("/streams", headers=bearer(tokens["read"]))).status_code == 200
        assert (await client.get("/streams", headers=bearer("spt_forged"))).status_code == 401
        bad = await client.post("/streams", headers=bearer(tokens["read"]), json={"stream_id": "x"})
        assert bad.status_code == 403
        ok = await client.post(
            "/streams", headers=bearer(tokens["operate"]), json={"stream_id": "secure-2"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["outcome"]["principal"] == "secure-operate"


def _cli_outputs(pg: SecurePg, tokens_file: Path) -> str:
    """A command line with a password in its URL against a closed port (a real process),
    ``api tokens list``, and the ``--help`` of every command with secrets in the
    environment."""
    secret_url = f"postgresql://streamplane_read_model:{pg.passwords()['streamplane_read_model']}"
    secret_url += f"@127.0.0.1:{closed_port()}/streamplane"
    env = {
        "STREAMPLANE_DATABASE_URL": secret_url,
        "STREAMPLANE_API_TOKENS_FILE": str(tokens_file),
        "PGPASSFILE": str(pg.pgpass),
    }
    failed = subprocess.run(
        [*CLI, "read-model", "--once", "--database-url", secret_url],
        env={**pg.env, **env, "STREAMPLANE_LOG_LEVEL": "DEBUG"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 3 and "error: database_url: " in failed.stderr, failed.stderr
    assert "PostgreSQL at 127.0.0.1:" in failed.stderr  # it says where, at DEBUG with a traceback
    out = [f"$ streamplane read-model ...\n{failed.stdout}{failed.stderr}"]
    runner = CliRunner()
    for args in (["api", "tokens", "list"], *([*c.path, "--help"] for c in commands())):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 0, (args, result.output)
        out.append(f"$ streamplane {' '.join(args)}\n{result.stdout}{result.stderr}")
    return "\n".join(out)


def _postgres_log(pg: SecurePg) -> str:
    logs = list(pg.cache.glob("postgres/postgres.log")) + list(
        fallback_home(pg.cache).glob("postgres.log")
    )
    return "\n".join(p.read_text(errors="replace") for p in logs[:1])


async def test_no_credential_in_any_log_line_error_or_help(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    topic_prefix: str,
    secure_pg: SecurePg,
    tmp_path: Path,
) -> None:
    tokens_file = tmp_path / "api-tokens.json"
    tokens = {s.name: create(tokens_file, name=f"secure-{s.name}", scope=s) for s in Scope}
    port = _free_port()
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        c.start_orchestrator("o1")
        c.start_worker("w1", max_streams=10)
        await c.wait_until(lambda: "w1" in c.fold().instances or "w1 unknown", 45, "w1 joins")
        await c.command(cmd.RegisterStream, stream_id="secure-1")
        wrong_port = _start(c, secure_pg, tokens_file, port, tmp_path)
        base = f"http://127.0.0.1:{port}"
        await _serving(base, {"Authorization": f"Bearer {tokens['read']}"}, c.fold().seq)
        await _requests(base, tokens)
        await _wrong_password_fails(wrong_port, tokens["read"])
        await _database_checks(secure_pg, tmp_path)
        cli = await asyncio.to_thread(_cli_outputs, secure_pg, tokens_file)  # they run loops
    logs = {p.name: p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log")}
    assert "API authentication: bearer tokens" in logs["api.log"]
    assert "password authentication failed" in logs["api-wrong-password.log"]
    assert "read model at offset" in logs["read-model.log"]
    texts = {
        **logs,
        "infra up": secure_pg.output,
        "postgres.log": _postgres_log(secure_pg),
        "cli": cli,
    }
    secrets = {f"password of {k}": v for k, v in secure_pg.passwords().items()}
    secrets |= {f"token {k}": v for k, v in tokens.items()}
    assert len(secrets) == 6 and all(len(v) >= 20 for v in secrets.values())
    leaks = [
        f"{what} in {where}"
        for where, text in texts.items()
        for what, secret in secrets.items()
        if secret in text
    ]
    assert not leaks, leaks
