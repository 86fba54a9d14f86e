"""A private PostgreSQL (Debian's server binaries) on its own port, loopback only, with
password (SCRAM-SHA-256) authentication and separate roles (:mod:`.pg_auth`)."""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from control_plane.tools.infra import pg_auth, process
from control_plane.tools.infra.config import (
    DATABASE_NAME,
    PG_USER,
    InfraError,
    cache_dir,
    database_url,
    pg_port,
)

START_TIMEOUT = 60


def bin_dir() -> Path:
    """Directory of pg_ctl & co: `STREAMPLANE_PG_BIN`, else the newest /usr/lib/postgresql."""
    if raw := os.environ.get("STREAMPLANE_PG_BIN"):
        return Path(raw)
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        process.apt_install(["postgresql"])
        found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        raise InfraError("PostgreSQL server binaries not found; apt-get install -y postgresql")
    return Path(max(found, key=lambda p: int(Path(p).parts[-3]))).parent


def _as_server_user() -> list[str]:
    # PostgreSQL refuses to run as root; as root we run its tools as the postgres user.
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser") is None:
        raise InfraError("running as root needs `runuser` (util-linux) to start PostgreSQL")
    return ["runuser", "-u", PG_USER, "--"]


def _traversable_by_server_user(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    probe = subprocess.run(["runuser", "-u", PG_USER, "--", "test", "-w", str(path)], check=False)
    return probe.returncode == 0


def home() -> Path:
    """Base dir (data, log, pid) under the cache dir, or under /tmp when the postgres user
    cannot reach the cache dir (e.g. a checkout below /root). The /tmp dir is named after the
    cache dir: two checkouts must not share a cluster (the passwords live in each cache)."""
    preferred = cache_dir() / "postgres"
    preferred.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(preferred, PG_USER, PG_USER)
    if _traversable_by_server_user(preferred):
        return preferred
    fallback = fallback_home(cache_dir())
    fallback.mkdir(mode=0o700, exist_ok=True)
    shutil.chown(fallback, PG_USER, PG_USER)
    return fallback


def fallback_home(cache: Path) -> Path:
    """The /tmp base dir of the cluster of cache dir ``cache`` (see :func:`home`)."""
    tag = hashlib.sha256(str(cache.resolve()).encode()).hexdigest()[:12]
    return Path(f"/tmp/streamplane-pg-{os.getuid()}-{tag}")


def _data(base: Path) -> Path:
    return base / "data"


def _run(cmd: list[str], what: str) -> str:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InfraError(f"{what} failed ({' '.join(cmd)}):\n{result.stdout}{result.stderr}")
    return result.stdout


def _initdb(base: Path) -> None:
    data = _data(base)
    if (data / "PG_VERSION").exists():
        return
    process.log(f"initdb {data}")
    cmd = [*_as_server_user(), str(bin_dir() / "initdb"), "-D", str(data), "-U", PG_USER]
    cmd += ["--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync"]
    _run(cmd, "initdb")


def _write_settings(base: Path) -> None:
    # Rewritten on every start so STREAMPLANE_PG_PORT changes take effect. TCP on loopback
    # only, no Unix socket (its path length and permissions are not worth the trouble), and
    # durability traded for speed: this cluster holds disposable test and dev data.
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": pg_port(),
        "unix_socket_directories": "''",
        "max_connections": 200,
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
    }
    conf = _data(base) / "streamplane.conf"
    conf.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
    main = _data(base) / "postgresql.conf"
    include = "include_if_exists = 'streamplane.conf'\n"
    if include not in main.read_text():
        with main.open("a") as handle:
            handle.write(include)


def server_pid(base: Path | None = None) -> int | None:
    """Pid of our postmaster when it is running, else None."""
    return process.read_pid(_data(base or home()) / "postmaster.pid")


def ready() -> bool:
    """pg_isready against our port."""
    cmd = [str(bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(pg_port())]
    return subprocess.run(cmd, check=False).returncode == 0


def _psql(sql: str, database: str = "postgres", secret: bool = False) -> str:
    """Run ``sql`` (on stdin: never on a command line) as the superuser, with the pgpass
    file; with ``secret`` a failure says only that it failed (psql echoes the SQL)."""
    cmd = [str(bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(pg_port()), "-U", PG_USER]
    cmd += ["-d", database, "-tAX", "-v", "ON_ERROR_STOP=1", "-f", "-"]
    env = {**os.environ, "PGPASSFILE": str(pg_auth.pgpass_path())}
    result = subprocess.run(cmd, input=sql, capture_output=True, text=True, check=False, env=env)
    if result.returncode != 0:
        detail = "(output withheld: the statement holds a password)" if secret else result.stderr
        raise InfraError(f"psql failed ({' '.join(cmd)}): {detail}")
    return result.stdout.strip()


def _write_hba(base: Path, text: str) -> None:
    hba = _data(base) / "pg_hba.conf"
    hba.write_text(text)
    os.chmod(hba, 0o600)
    if os.geteuid() == 0:
        shutil.chown(hba, PG_USER, PG_USER)


def _reload(base: Path) -> None:
    cmd = [*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(_data(base)), "reload"]
    _run(cmd, "reloading PostgreSQL")


def _secure(base: Path) -> None:
    pg_auth.secure(
        _data(base), _psql, reload=lambda: _reload(base), write_hba=lambda t: _write_hba(base, t)
    )


def _ensure_database() -> None:
    if _psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE_NAME}'") != "1":
        _psql(f"CREATE DATABASE {DATABASE_NAME}")


def up() -> str:
    """Start PostgreSQL (idempotent), create the database, return its URL."""
    base = home()
    if server_pid(base) is not None and process.port_open(pg_port()):
        process.wait_for(ready, START_TIMEOUT, "PostgreSQL to accept connections")
        _ensure_database()
        _secure(base)
        return database_url()
    if process.port_open(pg_port()):
        raise InfraError(
            f"port {pg_port()} is taken by a process that is not streamplane's PostgreSQL; "
            "stop it or set STREAMPLANE_PG_PORT"
        )
    _initdb(base)
    _write_settings(base)
    log_file = base / "postgres.log"
    if os.geteuid() == 0:
        log_file.touch()
        shutil.chown(log_file, PG_USER, PG_USER)
    cmd = [*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(_data(base))]
    cmd += ["-l", str(log_file), "-w", "-t", str(START_TIMEOUT), "start"]
    process.log(f"starting PostgreSQL on 127.0.0.1:{pg_port()} (data {_data(base)})")
    _run(cmd, f"starting PostgreSQL (log: {log_file})")
    process.wait_for(ready, START_TIMEOUT, "PostgreSQL to accept connections")
    _ensure_database()
    _secure(base)
    return database_url()


def down(purge: bool = False) -> None:
    """Fast shutdown (rolls back open transactions); purge deletes the data dir."""
    base = home()
    pid = server_pid(base)
    if pid is not None:
        process.log(f"stopping PostgreSQL (pid {pid})")
        cmd = [*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(_data(base))]
        result = subprocess.run(
            [*cmd, "-m", "fast", "-w", "-t", "30", "stop"], capture_output=True, check=False
        )
        if result.returncode != 0:
            process.stop_pids([pid])
    if purge:
        shutil.rmtree(base, ignore_errors=True)


def log_path() -> Path:
    """The server log file."""
    return home() / "postgres.log"
