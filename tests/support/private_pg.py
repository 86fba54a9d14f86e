"""A PostgreSQL server of one test's own, to stop and start at will without touching the
shared test database: ``with private_postgres(tmp_path) as pg: ... pg.stop(); pg.start()``.

It runs Debian's server binaries (``control_plane.tools.infra.postgres.bin_dir``) on a free
loopback port with a data directory of its own and ``trust`` authentication (loopback only,
disposable data), as the ``postgres`` user through ``runuser`` when the test runs as root,
exactly as ``streamplane infra`` does. The data directory is under ``tmp_path`` when the
server user can reach it, else in a private temporary directory; either way it is removed,
and the server stopped, when the block ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from control_plane.tools.infra.postgres import bin_dir

SERVER_USER = "postgres"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user() -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []


def _reachable(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    probe = [*_as_server_user(), "test", "-w", str(path)]
    return subprocess.run(probe, check=False, capture_output=True).returncode == 0


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}{done.stderr}"


class PrivatePostgres:
    """One server: :attr:`url` (database ``postgres``, user ``postgres``), :meth:`start`,
    :meth:`stop` (fast shutdown: sessions are ended, open transactions rolled back)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.log = base / "postgres.log"
        self.port = _free_port()
        self.url = f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> list[str]:
        return [*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(self.data), *args]

    def init(self) -> None:
        initdb = [*_as_server_user(), str(bin_dir() / "initdb"), "-D", str(self.data)]
        flags = ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"]
        _run([*initdb, "-U", SERVER_USER, *flags])
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": "''",
            "max_connections": 50,
            "fsync": "off",
            "shared_buffers": "'32MB'",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def start(self) -> None:
        _run(self._ctl("-l", str(self.log), "-w", "-t", "60", "start"))

    def stop(self) -> None:
        _run(self._ctl("-m", "fast", "-w", "-t", "60", "stop"))

    def running(self) -> bool:
        status = subprocess.run(self._ctl("status"), capture_output=True, check=False)
        return status.returncode == 0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextmanager
def private_postgres(tmp_path: Path) -> Iterator[PrivatePostgres]:
    """A started :class:`PrivatePostgres`; stopped and its files removed afterwards."""
    base = tmp_path / "private-pg"
    base.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, SERVER_USER, SERVER_USER)
    if not _reachable(base):  # e.g. pytest's 0700 base dir, which only root may enter
        base = Path(tempfile.mkdtemp(prefix="streamplane-test-pg-"))
        shutil.chown(base, SERVER_USER, SERVER_USER)
    pg = PrivatePostgres(base)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        if pg.running():
            subprocess.run(pg._ctl("-m", "immediate", "-w", "stop"), capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
